"""The memory ids that Idempotency-Keys stand for."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from uuid import UUID

from membank_server.domain.ports import KeyStore

__all__ = ["IdempotencyIds"]

_NAMESPACE = UUID("6f1c9a52-3a77-4c55-9d3e-2b0c7a9e8d41")


class IdempotencyIds:
    """Derives the id of the memory an Idempotency-Key stands for, per user.

    Under the server's secret the id cannot be computed by another user (who could
    otherwise take it first); without keys (authentication off) it is a plain UUIDv5.

    Args:
        keys: The key store holding the shared ``idempotency`` secret, read at
            :meth:`start`; None for no secret.
        secret: The secret itself (tests).
    """

    def __init__(self, keys: KeyStore | None = None, *, secret: bytes | None = None) -> None:
        self._keys = keys
        self._secret = secret

    async def start(self) -> None:
        """Read the shared secret (the key store must be started)."""
        if self._keys is not None:
            self._secret = await self._keys.secret("idempotency")

    def id_for(self, user_id: str, key: str) -> UUID:
        name = f"{user_id}\n{key}"
        if self._secret is None:
            return uuid.uuid5(_NAMESPACE, name)
        digest = hmac.new(self._secret, name.encode(), hashlib.sha256).digest()
        return UUID(bytes=digest[:16], version=5)
