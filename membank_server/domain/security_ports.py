"""The security layer's ports: API keys, the audit trail, authentication throttling and
re-sealing under field encryption (re-exported by ``domain.ports``)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from membank_server.domain.model import MemoryRecord
from membank_server.domain.security import ApiKey, AuditEntry, RateDecision

__all__ = ["AuditLog", "KeyStore", "Resealable", "Throttle"]


class KeyStore(Protocol):
    """API keys (by SHA-256 digest of the token, never the token) and team membership."""

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...

    async def add(self, key: ApiKey) -> None:
        """Store a new key; :class:`Conflict` when its id or digest is taken."""
        ...

    async def by_digest(self, digest: str) -> ApiKey | None: ...

    async def get(self, key_id: str) -> ApiKey | None: ...

    async def all(self) -> list[ApiKey]:
        """Every key, revoked and expired ones too, oldest first."""
        ...

    async def revoke(self, key_id: str, at: datetime, *, keep_admin: bool = True) -> ApiKey | None:
        """Mark a key revoked (idempotent); None when there is no such key.

        With ``keep_admin``, revoking an admin key that would leave no usable admin key
        without an expiry raises ``Conflict`` and changes nothing; revocations are
        serialised across every process sharing the store, so two admins revoking each
        other at once cannot both succeed.
        """
        ...

    async def restore(self, key_id: str) -> ApiKey | None:
        """Lift a key's revocation (the configured admin key, at start); None if absent."""
        ...

    async def add_member(self, team: str, user_id: str) -> None: ...

    async def secret(self, name: str) -> bytes:
        """A random 32-byte server secret by name, made on first use, the same for
        every instance sharing the store (it keys derived ids, so nobody can compute
        another user's)."""
        ...

    async def remove_member(self, team: str, user_id: str) -> bool: ...

    async def members(self, team: str) -> list[str]: ...

    async def memberships(self) -> list[tuple[str, str]]:
        """Every (team, user_id) membership, sorted (a backup)."""
        ...

    async def is_member(self, team: str, user_id: str) -> bool: ...


class AuditLog(Protocol):
    """The append-only audit log: entries can be added and read, never changed."""

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...

    async def append(self, entry: AuditEntry) -> None:
        """Add one entry; durable (fsynced or committed) when this returns."""
        ...

    async def read(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> list[AuditEntry]:
        """Entries in time order; with ``limit``, the last ``limit`` of them."""
        ...


class Throttle(Protocol):
    """Lockout after failed authentication and per-key rate limits, shared by instances."""

    async def locked(self, subject: str) -> float | None:
        """Seconds left of ``subject``'s lockout, or None when it is not locked."""
        ...

    async def failed(self, subject: str) -> float | None:
        """Count a failed authentication; the lockout's seconds when this one starts it."""
        ...

    async def hit(self, key_id: str, per_second: float, burst: int) -> RateDecision: ...

    async def aclose(self) -> None: ...


class Resealable(Protocol):
    """A store that encrypts fields under a key ring (``EncryptedStore``)."""

    @property
    def active_key(self) -> str:
        """The key id new writes are sealed with."""
        ...

    def reload_keys(self) -> None:
        """Re-read the key ring from its source (a keys file); no-op otherwise."""
        ...

    async def key_usage(self) -> dict[str, int]:
        """How many stored records have a field sealed with each key id."""
        ...

    async def scan_stale(
        self, cursor: str | None = None, limit: int = 500
    ) -> tuple[list[MemoryRecord], str | None]:
        """Like ``MemoryStore.scan`` (decrypted), only records with a field not sealed
        with the active key; the cursor walks every record."""
        ...
