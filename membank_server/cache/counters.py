"""Generation counters and popular-query counts, in Redis (shared) or in process.

``RedisPopularQueries`` implements the ``PopularQueries`` port over a
:class:`RedisCache` (so it shares its circuit breaker); the shared generations are
``cache.subscribed.SubscribedGenerations``; the ``Local*`` ones serve a single
instance without Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Sequence

from membank_server.cache.redis import RedisCache
from membank_server.domain.errors import CacheUnavailable

__all__ = ["LocalGenerations", "LocalPopularQueries", "RedisPopularQueries"]

_log = logging.getLogger("membank.cache")
_SEP = b"\x1f"


class LocalGenerations:
    """Counters in a dict: correct for one instance, which sees all its writes."""

    def __init__(self) -> None:
        self._values: dict[str, int] = {}

    async def current(self, keys: Sequence[str]) -> list[int]:
        return [self._values.get(k, 0) for k in keys]

    async def bump(self, key: str) -> int:
        self._values[key] = self._values.get(key, 0) + 1
        return self._values[key]

    async def aclose(self) -> None:
        return None


def _window(window_seconds: int, now: float, back: int = 0) -> str:
    return f"pop:{int(now // window_seconds) - back}"


class RedisPopularQueries:
    """Counts (user, query) in a sorted set per time window, flushed in the background.

    ``record`` only counts in memory; a task adds the counts to Redis (ZINCRBY)
    every ``flush_seconds``, so counting costs a search no round trip. Counts that
    cannot be flushed (Redis down) are dropped: warmup is a hint, not a ledger.
    """

    def __init__(
        self, redis: RedisCache, *, window_seconds: int = 3600, flush_seconds: float = 1.0
    ) -> None:
        self._redis = redis
        self._window = window_seconds
        self._flush_seconds = flush_seconds
        self._pending: Counter[bytes] = Counter()
        self._task: asyncio.Task[None] | None = None

    async def record(self, user_id: str, query: bytes) -> None:
        self._pending[user_id.encode() + _SEP + query] += 1
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._flush_later())

    async def top(self, k: int) -> list[tuple[str, bytes, float]]:
        await self.flush()
        now = time.time()
        keys = [_window(self._window, now), _window(self._window, now, back=1)]
        return [
            (member.split(_SEP, 1)[0].decode(), member.split(_SEP, 1)[1], score)
            for member, score in await self._redis.ztop(keys, k)
        ]

    async def flush(self) -> None:
        counts, self._pending = self._pending, Counter()
        key = _window(self._window, time.time())
        try:
            for member, n in counts.items():
                await self._redis.zincrby(key, member, n, ttl=self._window * 2)
        except CacheUnavailable as exc:
            _log.warning("popular-query counts dropped: %s", exc.message)

    async def _flush_later(self) -> None:
        await asyncio.sleep(self._flush_seconds)
        await self.flush()

    async def aclose(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()


class LocalPopularQueries:
    """Counts in process, for a single instance without Redis."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, bytes]] = Counter()

    async def record(self, user_id: str, query: bytes) -> None:
        self._counts[(user_id, query)] += 1

    async def top(self, k: int) -> list[tuple[str, bytes, float]]:
        return [(u, q, float(n)) for (u, q), n in self._counts.most_common(k)]

    async def aclose(self) -> None:
        return None
