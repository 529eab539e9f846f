"""Per-key rate limits shared through Redis, in leases of tokens spent locally.

The limit is the sliding window counter of the ``limits`` package (the same
arithmetic, in one Lua script that also returns the window's figures for the
RateLimit headers). An instance asks Redis for a *lease* of up to
``lease = max(1, floor(burst * lease_fraction))`` tokens at once; the script grants
as many as the window still allows and counts them all at once. The instance then
admits that key's requests from its lease without a round trip, until the lease is
spent or ``lease_seconds`` old (then its leftover is dropped, never handed back).

The error bound, for N instances sharing one Redis. Each instance holds at most
one lease per key (one lease request in flight per key; its other requests wait for
it), and every admitted request spends a token Redis granted. More: in any window a
key is admitted at most what the shared limiter allows plus the leftovers of leases
granted before the window began and spent in it, at most ``N * (lease - 1)``. Fewer:
leftovers dropped at ``lease_seconds``, and tokens one instance holds while another
is refused, at most ``N * (lease - 1)`` per ``lease_seconds``. ``lease_fraction = 0``
(or a burst under ``2 / lease_fraction``) makes ``lease = 1``: one round trip per
request, exactly the shared sliding window. A refusal is always Redis's answer.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from typing import Any

from membank_server.domain.security import RateDecision

__all__ = ["RedisRates"]

# KEYS: previous window, current window; ARGV: limit, window (ms), tokens wanted.
_TAKE = """
local limit = tonumber(ARGV[1])
local expiry = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local ttl = redis.call('PTTL', KEYS[2])
if ttl > 0 and ttl < expiry then
    redis.call('RENAME', KEYS[2], KEYS[1])
    redis.call('SET', KEYS[2], 0, 'PX', ttl + expiry)
end
local pc = tonumber(redis.call('GET', KEYS[1])) or 0
local pt = math.max(redis.call('PTTL', KEYS[1]), 0)
local cc = tonumber(redis.call('GET', KEYS[2])) or 0
local ct = math.max(redis.call('PTTL', KEYS[2]), 0)
local granted = math.min(wanted, limit - (math.floor(pc * pt / expiry) + cc))
if granted < 1 then
    return {0, pc, pt, cc, ct}
end
if redis.call('EXISTS', KEYS[2]) == 1 then
    cc = redis.call('INCRBY', KEYS[2], granted)
else
    redis.call('SET', KEYS[2], granted, 'PX', expiry * 2)
    cc, ct = granted, expiry * 2
end
return {granted, pc, pt, cc, ct}
"""


@dataclass
class _Lease:
    tokens: int
    until: float
    #: RateLimit-Remaining and the window's reset (monotonic) as of the grant.
    remaining: int
    reset_at: float


def _decision(granted: int, burst: int, window_ms: int, counts: list[int]) -> RateDecision:
    """What ``limits``' ``get_window_stats`` says of these counts, as a decision."""
    previous, previous_ttl, current, current_ttl = counts
    remaining = max(0, burst - math.floor(previous * previous_ttl / window_ms + current))
    resets = []
    if previous:
        resets.append(previous_ttl % (window_ms / previous))
    if current:
        resets.append(current_ttl % window_ms)
    return RateDecision(granted > 0, burst, remaining, min(resets, default=0.0) / 1000)


class RedisRates:
    """Sliding-window limits per key in Redis, in leases (module doc for the bound).

    Args:
        redis: A ``redis.asyncio`` client; its errors reach the caller.
        prefix: Prefix of the window keys.
        lease_fraction: Share of a key's burst one lease may take (0: one token).
        lease_seconds: Age at which a lease's leftover is dropped.
    """

    def __init__(
        self, redis: Any, prefix: str, *, lease_fraction: float = 0.0, lease_seconds: float = 1.0
    ) -> None:
        self._take = redis.register_script(_TAKE)
        self._prefix = prefix
        self._fraction, self._seconds = lease_fraction, lease_seconds
        self._leases: dict[tuple[str, int, int], _Lease] = {}
        #: The lease request in flight per key, which the key's other requests await.
        self._asking: dict[tuple[str, int, int], asyncio.Future[bool]] = {}

    async def hit(self, key_id: str, per_second: float, burst: int) -> RateDecision:
        window_ms = max(1, round(burst / per_second)) * 1000
        slot = (key_id, burst, window_ms)
        if math.floor(burst * self._fraction) <= 1:
            return await self._ask(slot, time.monotonic())  # exact: one token per request
        while True:
            now = time.monotonic()
            lease = self._leases.get(slot)
            if lease is not None and lease.tokens > 0 and now < lease.until:
                lease.tokens -= 1
                remaining = lease.remaining + lease.tokens
                return RateDecision(True, burst, remaining, lease.reset_at - now)
            asked = self._asking.get(slot)
            if asked is None:
                break
            # One lease request per key at a time: two would both be counted in Redis
            # and one dropped here, refusing what the limit allows.
            if not await asyncio.shield(asked):
                return await self._ask(slot, now, single=True)  # none came: its own token
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._asking[slot] = future
        leased = False
        try:
            decision = await self._ask(slot, now)
            leased = slot in self._leases
        finally:
            del self._asking[slot]
            future.set_result(leased)
        return decision

    async def _ask(
        self, slot: tuple[str, int, int], now: float, *, single: bool = False
    ) -> RateDecision:
        key_id, burst, window_ms = slot
        wanted = 1 if single else max(1, math.floor(burst * self._fraction))
        name = f"{self._prefix}{key_id}:{burst}:{window_ms}"
        granted, *counts = await self._take(
            keys=[f"{name}:prev", f"{name}:cur"], args=[burst, window_ms, wanted]
        )
        granted = int(granted)
        decision = _decision(granted, burst, window_ms, [int(c) for c in counts])
        if granted <= 1:
            if not single:
                self._leases.pop(slot, None)
            return decision
        if len(self._leases) > 100_000:
            self._leases.clear()
        self._leases[slot] = _Lease(
            granted - 1, now + self._seconds, decision.remaining, now + decision.reset_seconds
        )
        remaining = decision.remaining + granted - 1
        return RateDecision(True, burst, remaining, decision.reset_seconds)
