"""Who may do what: API keys, the principal a request acts as, and audit entries.

A key has a role (``user`` or ``admin``) and a scope: ``own`` touches only its
bound user_id, ``team`` only the user_ids of its team, ``all`` any user. Admin
functions (keys, teams, cache and storage operations, audit) need the admin role.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

__all__ = ["ApiKey", "AuditEntry", "Principal", "RateDecision", "Role", "Scope"]


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"


class Scope(StrEnum):
    OWN = "own"
    TEAM = "team"
    ALL = "all"


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key as stored: never its secret, only ``digest`` (SHA-256 of the token)."""

    id: str
    name: str
    role: Role
    scope: Scope
    created_at: datetime
    digest: str = ""
    user_id: str | None = None
    team: str | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    #: Per-key rate limit overrides (None: the configured default).
    rate_per_second: float | None = None
    burst: int | None = None

    def usable(self, now: datetime) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > now


@dataclass(frozen=True, slots=True)
class Principal:
    """The identity a request acts as, from its key."""

    key_id: str
    role: Role
    scope: Scope
    user_id: str | None = None
    team: str | None = None
    rate_per_second: float | None = None
    burst: int | None = None

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    @classmethod
    def of(cls, key: ApiKey) -> Principal:
        return cls(
            key.id, key.role, key.scope, key.user_id, key.team, key.rate_per_second, key.burst
        )


@dataclass(frozen=True, slots=True)
class RateDecision:
    """One rate-limit check: allowed or not, and what to put in the RateLimit headers."""

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: float


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One line of the append-only audit log.

    ``actor`` is a key id (or ``anonymous``), never key material; ``result`` is
    ``ok``, ``denied`` or ``failed``, with the HTTP ``status`` that was answered.
    """

    at: datetime
    request_id: str
    actor: str
    client: str
    action: str
    target: str
    result: str
    status: int
    details: Mapping[str, Any] = field(default_factory=dict)
