"""What a handler tells the audit line of its request, typed, in the request's scope."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from litestar.types import Scope

__all__ = ["AuditNote", "audit_note"]

_KEY = "membank.audit"


@dataclass
class AuditNote:
    """Filled while a request runs, read by the security middleware when it writes
    the audit line (after the handler, before the answer leaves)."""

    #: The user the tenant check passed: the value the handler used.
    user: str | None = None
    #: What the action was on, when the path does not say it (``key:abc``).
    target: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def audit_note(scope: Scope) -> AuditNote:
    """The note of the request with this ASGI ``scope`` (made on first use)."""
    state: dict[str, Any] = scope.setdefault("state", {})
    note = state.get(_KEY)
    if not isinstance(note, AuditNote):
        note = state[_KEY] = AuditNote()
    return note
