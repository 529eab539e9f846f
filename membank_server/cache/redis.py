"""RedisCache: a cache level (L2, or L3) in Redis or Valkey, behind a circuit breaker.

Every key is namespaced by ``prefix``, so levels, deployments and tests can share a
server. Beyond the ``Cache`` port it offers what instances must agree on: atomic
counters (per-user generations), sorted sets per time window (popular queries) and a
lease lock (one instance runs the scheduled warmup).

Failures are fail-fast: small socket timeouts, no driver retries, and a
:class:`~membank_server.cache.breaker.CircuitBreaker`. Every driver error becomes
:class:`CacheUnavailable` (``raise ... from exc``) and counts against the breaker;
while it is open, calls raise ``CacheUnavailable`` without touching the network.
"""

from __future__ import annotations

import logging
import re
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from membank_server.cache.breaker import CircuitBreaker
from membank_server.domain.errors import CacheUnavailable, ConfigError

__all__ = ["RedisCache"]

_T = TypeVar("_T")
_log = logging.getLogger("membank.cache")
# redis-py wraps socket failures in its own errors, but asyncio timeouts and a few
# connect paths surface as OSError (TimeoutError is one).
_DRIVER_ERRORS = (RedisError, OSError)
_SCAN_BATCH = 500
_GLOB = re.compile(r"([*?\[\]\\])")
# Delete the lock only if it still holds our token: after our lease expired another
# instance may own it, and a blind DEL would release their lock.
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""

_INCR_ANNOUNCED = """
local value = redis.call('INCR', KEYS[1])
redis.call('PUBLISH', ARGV[1], ARGV[2])
return value
"""


class RedisCache:
    """The cache port over ``redis.asyncio``, plus counters, sorted sets and a lock.

    Args:
        url: ``redis://``, ``rediss://`` or ``unix://`` URL, database included.
        name: The level's label in metrics and errors (``l2``, ``l3``).
        prefix: Namespace of every key this instance reads or writes; defaults to
            ``membank:{name}:``.
        default_ttl: Seconds an entry lives when ``set`` gives no ttl; None for no expiry.
        connect_timeout: Seconds to open a connection before giving up.
        timeout: Seconds to wait for a reply before giving up.
        max_connections: Size of the connection pool.
        failure_threshold: Consecutive failures that open the circuit breaker.
        cooldown: Seconds the breaker stays open at first; doubles after each
            failed trial, up to ``max_cooldown``.
        max_cooldown: Cap on the breaker's cool-down, seconds.
    """

    def __init__(
        self,
        url: str,
        *,
        name: str = "l2",
        prefix: str | None = None,
        default_ttl: float | None = 300.0,
        connect_timeout: float = 0.25,
        timeout: float = 0.25,
        max_connections: int = 64,
        failure_threshold: int = 5,
        cooldown: float = 1.0,
        max_cooldown: float = 30.0,
    ) -> None:
        _millis(default_ttl)  # refuses a nonsense TTL now rather than on the first set
        self._name = name
        self.prefix = f"membank:{name}:" if prefix is None else prefix
        self.default_ttl = default_ttl
        self.breaker = CircuitBreaker(
            name,
            failure_threshold=failure_threshold,
            cooldown=cooldown,
            max_cooldown=max_cooldown,
            failures=_DRIVER_ERRORS,
        )
        try:
            # A blocking pool: a burst wider than the pool waits (up to ``timeout``) for
            # a connection instead of failing with "Too many connections", which would
            # count towards the breaker and shut the level off under plain load.
            pool = BlockingConnectionPool.from_url(
                url,
                socket_connect_timeout=connect_timeout,
                socket_timeout=timeout,
                # Pinned to what from_url does today: a driver retry would multiply
                # every timeout while Redis is down; the breaker decides when to retry.
                retry=Retry(NoBackoff(), 0),
                max_connections=max_connections,
                timeout=timeout,
            )
        except ValueError as exc:
            raise ConfigError(f"invalid Redis URL for cache level {name}: {exc}") from exc
        self._redis = Redis(connection_pool=pool)
        self._release = self._redis.register_script(_RELEASE)
        self._announced = self._redis.register_script(_INCR_ANNOUNCED)
        self._closed = False

    @property
    def name(self) -> str:
        return self._name

    # -- the Cache port ------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        async def op() -> bytes | None:
            return _as_bytes(await self._redis.get(self._key(key)))

        return await self._run("GET", op)

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []

        async def op() -> list[bytes | None]:
            values = await self._redis.mget([self._key(k) for k in keys])
            return [_as_bytes(v) for v in values]

        return await self._run("MGET", op)

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        px = _millis(self.default_ttl if ttl is None else ttl)

        async def op() -> None:
            await self._redis.set(self._key(key), value, px=px)

        await self._run("SET", op)

    async def delete(self, keys: Sequence[str]) -> None:
        if not keys:
            return

        async def op() -> None:
            await self._redis.unlink(*[self._key(k) for k in keys])

        await self._run("UNLINK", op)

    async def clear(self, prefix: str = "") -> int:
        """Unlink every key under ``prefix`` (SCAN in batches; never KEYS, which blocks)."""
        pattern = _GLOB.sub(r"\\\1", self._key(prefix)) + "*"

        async def op() -> int:
            removed = 0
            batch: list[bytes] = []
            async for key in self._redis.scan_iter(match=pattern, count=_SCAN_BATCH):
                batch.append(key)
                if len(batch) >= _SCAN_BATCH:
                    removed += await self._redis.unlink(*batch)
                    batch = []
            if batch:
                removed += await self._redis.unlink(*batch)
            return removed

        return await self._run("SCAN/UNLINK", op)

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._redis.aclose(close_connection_pool=True)

    # -- shared state between instances --------------------------------------

    async def incr(self, key: str, announce: str | None = None) -> int:
        """Atomically add one to a counter (created at 0, never expiring); the new value.

        With ``announce`` (a channel, not prefixed), ``key`` is published there in the
        same step: a subscriber hears of the new value before the caller has it.
        """

        async def op() -> int:
            if announce is None:
                return int(await self._redis.incr(self._key(key)))
            return int(await self._announced(keys=[self._key(key)], args=[announce, key]))

        return await self._run("INCR", op)

    async def get_int(self, keys: Sequence[str]) -> list[int]:
        """Counters in one round trip; 0 for a counter never incremented."""
        if not keys:
            return []

        async def op() -> list[int]:
            values = await self._redis.mget([self._key(k) for k in keys])
            return [0 if v is None else int(v) for v in values]

        return await self._run("MGET", op)

    async def zincrby(
        self, key: str, member: bytes | str, amount: float = 1.0, ttl: float | None = None
    ) -> float:
        """Add ``amount`` to ``member``'s score; the new score.

        ``ttl`` is set only when the sorted set has none (``PEXPIRE NX``), so a set
        named after a time window expires a fixed time after the window began.
        """
        px = _millis(ttl)

        async def op() -> float:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zincrby(self._key(key), amount, member)
                if px is not None:
                    pipe.pexpire(self._key(key), px, nx=True)
                results = await pipe.execute()
            return float(results[0])

        return await self._run("ZINCRBY", op)

    async def ztop(self, key: str | Sequence[str], k: int) -> list[tuple[bytes, float]]:
        """The ``k`` highest-scored members, best first; of several sets, scores summed."""
        if k <= 0:
            return []
        keys = [key] if isinstance(key, str) else list(key)
        if not keys:
            return []

        async def op() -> list[tuple[bytes, float]]:
            if len(keys) == 1:
                rows = await self._redis.zrevrange(self._key(keys[0]), 0, k - 1, withscores=True)
            else:
                # Summed server-side so only k rows cross the network.
                tmp = self._key(f"tmp:{uuid.uuid4().hex}")
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.zunionstore(tmp, [self._key(x) for x in keys])
                    pipe.zrevrange(tmp, 0, k - 1, withscores=True)
                    pipe.unlink(tmp)
                    rows = (await pipe.execute())[1]
            return _scored(rows)

        return await self._run("ZREVRANGE", op)

    @asynccontextmanager
    async def lock(self, name: str, ttl: float) -> AsyncIterator[bool]:
        """Try once to take a lease lock for ``ttl`` seconds; yield whether we hold it.

        Only the holder releases it (compare-and-delete), on leaving the block. If
        the release cannot reach Redis the lease simply expires after ``ttl``.

        Raises:
            CacheUnavailable: Redis cannot answer, so nobody can tell who holds it.
        """
        key = self._key(f"lock:{name}")
        token = secrets.token_hex(16)
        px = _millis(ttl)

        async def take() -> bool:
            return bool(await self._redis.set(key, token, nx=True, px=px))

        acquired = await self._run("SET NX", take)
        try:
            yield acquired
        finally:
            if acquired:
                await self._unlock(key, token)

    def _key(self, key: str) -> str:
        return self.prefix + key

    async def _unlock(self, key: str, token: str) -> None:
        async def release() -> None:
            await self._release(keys=[key], args=[token])

        try:
            await self._run("EVALSHA", release)
        except CacheUnavailable:
            # Raising here would replace the outcome of the guarded work with an
            # error about bookkeeping; the lease expires on its own.
            _log.warning("could not release lock %s; it expires with its lease", key, exc_info=True)

    async def _run(self, op: str, fn: Callable[[], Awaitable[_T]]) -> _T:
        try:
            return await self.breaker.call(fn)
        except _DRIVER_ERRORS as exc:
            raise CacheUnavailable(
                f"{self._name}: Redis {op} failed: {str(exc) or type(exc).__name__}",
                {"level": self._name, "op": op},
            ) from exc


def _as_bytes(value: bytes | str | None) -> bytes | None:
    # The client never decodes responses, but its types allow str.
    return value.encode() if isinstance(value, str) else value


def _scored(rows: Sequence[Any]) -> list[tuple[bytes, float]]:
    # WITHSCORES replies come back as (member, score) pairs.
    return [(_as_bytes(member) or b"", float(score)) for member, score in rows]


def _millis(ttl: float | None) -> int | None:
    if ttl is None:
        return None
    if not ttl > 0:
        raise ValueError(f"ttl must be positive seconds or None, not {ttl!r}")
    return max(1, round(ttl * 1000))
