"""TieredCache: read-through over several cache levels (L1 in process, L2/L3 shared).

Reads walk the levels in order and stop at the first hit, which is then copied
(promoted) into every level above it, with each level's own default TTL. A level
that raises :class:`CacheUnavailable` counts as a miss and is skipped, so reads never
fail because of a cache. Writes go to every level at once; a level that cannot take
one is reported and skipped. Deletes and clears also go to every level, but a level
that missed one is then reported to the caller (``CacheUnavailable``), because it
may still serve the removed entries once it answers again.

Every level consulted is reported through ``on_event(level_name, outcome)`` with
outcome ``hit``, ``miss`` or ``error`` (once per key), which is what per-level
hit/miss counters and hit rates are made of.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

from membank_server.domain.errors import CacheUnavailable
from membank_server.domain.ports import Cache

__all__ = ["TieredCache"]


def _ignore(level: str, outcome: str) -> None:
    return None


def _untimed(level: str, seconds: float) -> None:
    return None


class TieredCache:
    """The :class:`~membank_server.domain.ports.Cache` port over ordered levels.

    The tiered cache owns its levels: :meth:`aclose` closes every one.

    Args:
        levels: Fastest first (L1, L2, L3); at least one.
        on_event: Called with (level name, ``hit`` | ``miss`` | ``error``) for every
            level consulted per key, and with ``error`` for a failed write
            (promotions included).
        on_time: Called with (level name, seconds) for every read of a level (one
            ``get`` or ``get_many``), failed ones included.
    """

    def __init__(
        self,
        levels: Sequence[Cache],
        on_event: Callable[[str, str], None] | None = None,
        on_time: Callable[[str, float], None] | None = None,
    ) -> None:
        if not levels:
            raise ValueError("a tiered cache needs at least one level")
        self.levels = tuple(levels)
        self._on_event = _ignore if on_event is None else on_event
        self._on_time = _untimed if on_time is None else on_time

    @property
    def name(self) -> str:
        return "tiered"

    async def get(self, key: str) -> bytes | None:
        for i, level in enumerate(self.levels):
            started = time.perf_counter()
            try:
                value = await level.get(key)
            except CacheUnavailable:
                self._on_event(level.name, "error")
                continue
            finally:
                self._on_time(level.name, time.perf_counter() - started)
            if value is None:
                self._on_event(level.name, "miss")
                continue
            self._on_event(level.name, "hit")
            await self._promote(self.levels[:i], {key: value})
            return value
        return None

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        found: dict[str, bytes] = {}
        for i, level in enumerate(self.levels):
            wanted = list(dict.fromkeys(k for k in keys if k not in found))
            if not wanted:
                break
            started = time.perf_counter()
            try:
                values = await level.get_many(wanted)
            except CacheUnavailable:
                for _ in wanted:
                    self._on_event(level.name, "error")
                continue
            finally:
                self._on_time(level.name, time.perf_counter() - started)
            hits = {k: v for k, v in zip(wanted, values, strict=True) if v is not None}
            for k in wanted:
                self._on_event(level.name, "hit" if k in hits else "miss")
            await self._promote(self.levels[:i], hits)
            found.update(hits)
        return [found.get(k) for k in keys]

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Write to every level; a level that cannot take it is reported and skipped."""
        await self._set_on(self.levels, key, value, ttl)

    async def delete(self, keys: Sequence[str]) -> None:
        """Delete from every level.

        Raises:
            CacheUnavailable: some level could not delete (the others did).
        """
        failed = await self._each(self.levels, lambda level: level.delete(keys))
        if failed:
            raise CacheUnavailable(
                f"cache delete missed level(s) {', '.join(failed)}", {"levels": failed}
            )

    async def clear(self, prefix: str = "") -> int:
        """Clear every level; the largest count of any one level (entries, not copies).

        Raises:
            CacheUnavailable: some level could not clear (the others did).
        """
        counts: list[int] = []

        async def clear(level: Cache) -> None:
            counts.append(await level.clear(prefix))

        failed = await self._each(self.levels, clear)
        if failed:
            raise CacheUnavailable(
                f"cache clear missed level(s) {', '.join(failed)}",
                {"levels": failed, "removed": max(counts, default=0)},
            )
        return max(counts, default=0)

    async def aclose(self) -> None:
        results = await asyncio.gather(
            *(level.aclose() for level in self.levels), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _promote(self, levels: Sequence[Cache], entries: dict[str, bytes]) -> None:
        # Each level's default TTL: a promoted copy is a fresh cache fill for that level.
        if levels:
            for key, value in entries.items():
                await self._set_on(levels, key, value, None)

    async def _set_on(
        self, levels: Sequence[Cache], key: str, value: bytes, ttl: float | None
    ) -> None:
        await self._each(levels, lambda level: level.set(key, value, ttl))

    async def _each(
        self, levels: Sequence[Cache], op: Callable[[Cache], Awaitable[None]]
    ) -> list[str]:
        """Run ``op`` on every level concurrently; the names of levels that were unavailable."""

        async def one(level: Cache) -> str | None:
            try:
                await op(level)
            except CacheUnavailable:
                self._on_event(level.name, "error")
                return level.name
            return None

        outcomes = await asyncio.gather(*(one(level) for level in levels))
        return [name for name in outcomes if name is not None]
