"""EncryptedCache: AES-256-GCM around a shared cache level (the Redis L2 and L3).

Cached search results hold memory contents, so what leaves the process is sealed
with the ring's active key, the cache key as AAD (an entry moved under another key
does not open). An entry that does not open (sealed with a retired key, written
before encryption was on, or altered) is a miss and is deleted: the cache is only
ever a copy, and the caller computes the answer again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from membank_server.domain.errors import IntegrityError
from membank_server.domain.ports import Cache
from membank_server.security.crypto import KeyRing

__all__ = ["EncryptedCache"]

_log = logging.getLogger("membank.security")


class EncryptedCache:
    """The :class:`~membank_server.domain.ports.Cache` port, sealing values of ``inner``.

    Args:
        inner: The level that keeps the sealed bytes; closed by :meth:`aclose`.
        ring: The data keys.
    """

    def __init__(self, inner: Cache, ring: KeyRing) -> None:
        self.inner = inner
        self.ring = ring

    @property
    def name(self) -> str:
        return self.inner.name

    def _open(self, key: str, value: bytes) -> bytes | None:
        try:
            return self.ring.open_bytes(value, key.encode("utf-8"))
        except IntegrityError as exc:
            # Not an error for a cache: the entry is unusable, so it is a miss; but a
            # value that does not open may be tampering, so it is logged.
            _log.warning("cache entry %s failed to open, treated as a miss: %s", key, exc.message)
            return None

    async def get(self, key: str) -> bytes | None:
        value = await self.inner.get(key)
        if value is None:
            return None
        opened = self._open(key, value)
        if opened is None:
            await self.inner.delete([key])
        return opened

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        raw = await self.inner.get_many(keys)
        out: list[bytes | None] = []
        unusable: list[str] = []
        for key, value in zip(keys, raw, strict=True):
            opened = None if value is None else self._open(key, value)
            if value is not None and opened is None:
                unusable.append(key)
            out.append(opened)
        if unusable:
            await self.inner.delete(unusable)
        return out

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        await self.inner.set(key, self.ring.seal_bytes(value, key.encode("utf-8")), ttl)

    async def delete(self, keys: Sequence[str]) -> None:
        await self.inner.delete(keys)

    async def clear(self, prefix: str = "") -> int:
        return await self.inner.clear(prefix)

    async def aclose(self) -> None:
        await self.inner.aclose()
