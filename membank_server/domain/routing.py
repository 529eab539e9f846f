"""Which store answered the current request, for the ``X-Membank-Backend`` header.

A composite store records its choice here; the HTTP layer reads it back after the
service call. Context variables follow the request's task, so concurrent requests
never see each other's choice.
"""

from __future__ import annotations

from contextvars import ContextVar

__all__ = ["answered_by", "note_backend"]

_backend: ContextVar[str | None] = ContextVar("membank_backend", default=None)


def note_backend(name: str) -> None:
    """Record that the store called ``name`` answered the current read."""
    _backend.set(name)


def answered_by() -> str | None:
    return _backend.get()
