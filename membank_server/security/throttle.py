"""Lockout after failed authentication, and per-key rate limits.

``RedisThrottle`` keeps the state in Redis so every instance sees the same
lockouts and counts (a Lua script makes a failure and the lockout it may start
one step); ``LocalThrottle`` keeps it in the process. Rate limits are the
sliding window counter of the ``limits`` package (in process), or the same
arithmetic in Redis (``redis_rates``, with leases of tokens spent locally): a key
with ``per_second`` and ``burst`` may make ``burst`` requests in any window of
``burst / per_second`` seconds (rounded to whole seconds), a token bucket's promise
(with leases, within the bound ``redis_rates`` states).

When Redis does not answer, ``RedisThrottle`` falls back to its local state and
logs it: protection degrades to per instance, requests are not refused for it.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from redis.exceptions import RedisError

from membank_server.domain.security import RateDecision
from membank_server.security.redis_rates import RedisRates

__all__ = ["LocalThrottle", "LockoutPolicy", "RedisThrottle"]

_log = logging.getLogger("membank.security")

_FAIL = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
if n < tonumber(ARGV[2]) then return 0 end
redis.call('DEL', KEYS[1])
local s = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
local ms = math.min(tonumber(ARGV[4]) * 2 ^ (s - 1), tonumber(ARGV[5]))
redis.call('SET', KEYS[3], s, 'PX', math.floor(ms))
return math.floor(ms)
"""


@dataclass(frozen=True)
class LockoutPolicy:
    """``max_failures`` in ``window`` seconds lock for ``base`` seconds, doubling per
    lockout up to ``cap``; the doubling is forgotten ``reset`` seconds after the last."""

    max_failures: int = 10
    window: float = 60.0
    base: float = 30.0
    cap: float = 900.0
    reset: float = 3600.0

    def duration(self, strikes: int) -> float:
        return float(min(self.base * 2 ** (strikes - 1), self.cap))


class _Rates:
    """Per-key sliding-window limits over a ``limits`` storage.

    A request costs one ``hit``. The window's figures (for the RateLimit headers) are
    read at most every ``stats_every`` seconds per key and counted down locally in
    between, so ``RateLimit-Remaining`` may be a little stale on a busy multi-instance
    key; a refusal always reads them fresh for its ``Retry-After``.
    """

    def __init__(self, storage: Storage, stats_every: float = 0.1) -> None:
        self._limiter = SlidingWindowCounterRateLimiter(storage)
        self._items: dict[tuple[float, int], RateLimitItem] = {}
        self._every = stats_every
        #: key id -> (read at (monotonic), remaining then, reset (epoch), hits since)
        self._stats: dict[str, tuple[float, int, float, int]] = {}

    def _item(self, per_second: float, burst: int) -> RateLimitItem:
        item = self._items.get((per_second, burst))
        if item is None:
            window = max(1, round(burst / per_second))
            item = self._items[(per_second, burst)] = RateLimitItemPerSecond(burst, window)
        return item

    async def hit(self, key_id: str, per_second: float, burst: int) -> RateDecision:
        item = self._item(per_second, burst)
        allowed = await self._limiter.hit(item, "key", key_id)
        now = time.monotonic()
        seen = self._stats.get(key_id)
        if allowed and seen is not None and now - seen[0] < self._every:
            at, remaining, reset, hits = seen
            self._stats[key_id] = (at, remaining, reset, hits + 1)
            return RateDecision(True, burst, max(0, remaining - hits - 1), reset - time.time())
        stats = await self._limiter.get_window_stats(item, "key", key_id)
        if len(self._stats) > 100_000:
            self._stats.clear()
        self._stats[key_id] = (now, stats.remaining, stats.reset_time, 0)
        return RateDecision(
            allowed, burst, max(0, stats.remaining), max(0.0, stats.reset_time - time.time())
        )


class LocalThrottle:
    """The ``Throttle`` port in one process."""

    def __init__(self, policy: LockoutPolicy) -> None:
        self.policy = policy
        self._failures: dict[str, tuple[int, float]] = {}
        self._strikes: dict[str, tuple[int, float]] = {}
        self._locks: dict[str, float] = {}
        self._bound = 100_000
        self._rates = _Rates(MemoryStorage())

    async def locked(self, subject: str) -> float | None:
        until = self._locks.get(subject)
        if until is None:
            return None
        left = until - time.monotonic()
        if left <= 0:
            del self._locks[subject]
            return None
        return left

    async def failed(self, subject: str) -> float | None:
        now = time.monotonic()
        p = self.policy
        count, since = self._failures.get(subject, (0, now))
        if now - since > p.window:
            count, since = 0, now
        count += 1
        if count < p.max_failures:
            self._failures[subject] = (count, since)
            if len(self._failures) > self._bound:
                self._forget(now)
                # Still many live subjects: forget again only after as many more.
                self._bound = max(100_000, 2 * len(self._failures))
            return None
        self._failures.pop(subject, None)
        strikes, last = self._strikes.get(subject, (0, now))
        strikes = 1 if now - last > p.reset else strikes + 1
        self._strikes[subject] = (strikes, now)
        seconds = p.duration(strikes)
        self._locks[subject] = now + seconds
        return seconds

    def _forget(self, now: float) -> None:
        """Bound memory under a flood of distinct subjects: drop what has run out."""
        p = self.policy
        self._failures = {k: v for k, v in self._failures.items() if now - v[1] <= p.window}
        self._strikes = {k: v for k, v in self._strikes.items() if now - v[1] <= p.reset}
        self._locks = {k: v for k, v in self._locks.items() if v > now}

    async def hit(self, key_id: str, per_second: float, burst: int) -> RateDecision:
        return await self._rates.hit(key_id, per_second, burst)

    async def aclose(self) -> None:
        return None


class RedisThrottle:
    """The ``Throttle`` port over a Redis shared by every instance.

    ``locked`` is asked on every request, so its answer is remembered locally: a
    lockout until it ends, "not locked" for ``check_seconds`` (how late another
    instance's new lockout can be seen here).
    """

    def __init__(
        self,
        url: str,
        policy: LockoutPolicy,
        *,
        timeout: float = 0.25,
        check_seconds: float = 1.0,
        prefix: str = "membank:sec:",
        lease_fraction: float = 0.0,
        lease_seconds: float = 1.0,
    ) -> None:
        self.policy = policy
        self._redis: Any = aioredis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self._fail = self._redis.register_script(_FAIL)
        self._prefix = prefix
        self._check = check_seconds
        self._seen: dict[str, tuple[float | None, float]] = {}
        self._local = LocalThrottle(policy)
        lease = {"lease_fraction": lease_fraction, "lease_seconds": lease_seconds}
        self._rates = RedisRates(self._redis, f"{prefix}rate:", **lease)

    def _degraded(self, what: str, exc: Exception) -> None:
        _log.warning("security state in Redis unavailable (%s), using local state: %s", what, exc)

    async def locked(self, subject: str) -> float | None:
        now = time.monotonic()
        seen = self._seen.get(subject)
        if seen is not None:
            until, checked = seen
            if until is not None and until > now:
                return float(until - now)
            if until is None and now - checked < self._check:
                return None
        try:
            ms = await self._redis.pttl(f"{self._prefix}lock:{subject}")
        except (RedisError, OSError) as exc:
            self._degraded("lockout", exc)
            return await self._local.locked(subject)
        if len(self._seen) > 100_000:
            self._seen.clear()
        if ms is None or ms <= 0:
            self._seen[subject] = (None, now)
            return await self._local.locked(subject)
        self._seen[subject] = (now + ms / 1000, now)
        return float(ms) / 1000

    async def failed(self, subject: str) -> float | None:
        p = self.policy
        keys = [f"{self._prefix}{kind}:{subject}" for kind in ("fail", "strikes", "lock")]
        args = [
            math.ceil(p.window * 1000),
            p.max_failures,
            math.ceil(p.reset * 1000),
            math.ceil(p.base * 1000),
            math.ceil(p.cap * 1000),
        ]
        try:
            ms = int(await self._fail(keys=keys, args=args))
        except (RedisError, OSError) as exc:
            self._degraded("lockout", exc)
            return await self._local.failed(subject)
        if ms <= 0:
            return None
        self._seen[subject] = (time.monotonic() + ms / 1000, time.monotonic())
        return ms / 1000

    async def hit(self, key_id: str, per_second: float, burst: int) -> RateDecision:
        try:
            return await self._rates.hit(key_id, per_second, burst)
        except (RedisError, OSError) as exc:
            self._degraded("rate limit", exc)
            return await self._local.hit(key_id, per_second, burst)

    async def aclose(self) -> None:
        await self._redis.aclose()
