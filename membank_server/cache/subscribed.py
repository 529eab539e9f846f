"""SubscribedGenerations: per-user generations in Redis, remembered while subscribed.

The ``Generations`` port over counters in Redis (``{l2 prefix}gen:{user}``), with
every bump published on a channel in the same Lua step as its INCR. Each instance
listens on that channel; while its subscription is up, a generation it has read is
answered from memory, and forgotten when a bump of it is announced. A cached search
then costs no Redis round trip for the generation.

Staleness, exactly: an instance answers from memory only while subscribed, and only
values it read from Redis after its subscription was confirmed, with no announcement
received while the read was in flight. A bump is announced by Redis before the
bumping instance gets its reply (INCR and PUBLISH are one script), so the
announcement is in every subscriber's socket before the write that bumped is
acknowledged; an instance answers a stale generation only for a search it handles
before its event loop has read that announcement. If the subscription breaks, the
instance forgets everything it remembered and reads every generation from Redis
until it has subscribed again (and forgets again then: announcements made while it
was away are lost). A connection that dies silently is found by a PING unanswered
within ``check_seconds``: at most ``2 * check_seconds`` of staleness in that case.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from membank_server.cache.redis import RedisCache

__all__ = ["SubscribedGenerations"]

_log = logging.getLogger("membank.cache")


class SubscribedGenerations:
    """Generation counters in Redis, answered from memory while subscribed (module doc).

    Args:
        redis: The L2 cache: its counters (``gen:{user}``) and its circuit breaker.
        url: The same Redis, for the subscription's own connection.
        channel: Where bumps are announced.
        connect_timeout: Seconds to open the subscription's connection.
        check_seconds: Idle seconds before the subscription is pinged.
        max_known: Generations remembered at most (then all are forgotten at once).
        remember: False to read every generation from Redis (no subscription; bumps are
            still announced, for instances that remember).
    """

    def __init__(
        self,
        redis: RedisCache,
        url: str,
        *,
        channel: str = "membank:generations",
        connect_timeout: float = 0.25,
        check_seconds: float = 1.0,
        max_known: int = 100_000,
        remember: bool = True,
    ) -> None:
        self._redis = redis
        # No read timeout on the subscription: it is idle most of the time.
        self._listener: Any = Redis.from_url(
            url, socket_connect_timeout=connect_timeout, retry=Retry(NoBackoff(), 0)
        )
        self._channel = channel
        self._check, self._max = check_seconds, max_known
        self._known: dict[str, int] = {}
        #: Bumped on every announcement and on every (un)subscription.
        self._seq = 0
        self.subscribed = False
        self._task: asyncio.Task[None] | None = None
        self._closed = not remember  # never subscribes, so never remembers

    async def current(self, keys: Sequence[str]) -> list[int]:
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self._listen(), name="membank: generations")
        if self.subscribed:
            known = [self._known.get(k) for k in keys]
            if None not in known:
                return [v for v in known if v is not None]
        seq = self._seq
        values = await self._redis.get_int([f"gen:{k}" for k in keys])
        if self.subscribed and seq == self._seq:
            if len(self._known) + len(keys) > self._max:
                self._known.clear()
            self._known.update(zip(keys, values, strict=True))
        return values

    async def bump(self, key: str) -> int:
        self._forget(key)
        return await self._redis.incr(f"gen:{key}", announce=self._channel)

    def _forget(self, key: str | None) -> None:
        self._seq += 1
        if key is None:
            self._known.clear()
        else:
            self._known.pop(key, None)

    async def _listen(self) -> None:
        pause = 0.05
        while not self._closed:
            pubsub = self._listener.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                await self._follow(pubsub)
            except (RedisError, OSError) as exc:
                _log.warning("generation announcements lost (%s); reading Redis until back", exc)
            finally:
                self.subscribed = False
                self._forget(None)
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
            if not self._closed:
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)

    async def _follow(self, pubsub: Any) -> None:
        pinged = False
        while True:
            message = await pubsub.get_message(timeout=self._check)
            if message is None:
                if pinged:
                    raise ConnectionError("the subscription did not answer a PING")
                await pubsub.ping()
                pinged = True
                continue
            pinged = False
            kind = message["type"]
            if kind == "subscribe":
                self._forget(None)  # anything announced before now was missed
                self.subscribed = True
            elif kind == "message":
                data = message["data"]  # the counter's key: gen:{user}
                key = data.decode() if isinstance(data, bytes) else str(data)
                self._forget(key.removeprefix("gen:"))

    async def aclose(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._listener.aclose()  # the RedisCache is closed as a cache level
