"""The sampler: every ``observe.sample_seconds`` the server writes down its own figures.

Each tick (aligned on multiples of the interval, so the workers of one server
tick together) reads the server's totals (every worker's counters added up),
makes the window since the last tick, counts the store's memories and, every
``census_seconds``, its users, disk and largest tenants, and keeps one
:class:`~membank_server.domain.capacity.Sample` with its window in the history.
Several workers make the same sample of the same moment; the history keeps the
first. Samples older than the retention are forgotten once an hour.

Tenants are published to the metrics as pseudonyms: an HMAC of the user id under
a secret the history keeps (so every worker and instance gives a tenant the same
name, and a name cannot be turned back into an id without the secret).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from membank_server.domain.capacity import Sample
from membank_server.domain.errors import MembankError
from membank_server.domain.observe import (
    Census,
    HistoryStore,
    RequestWindow,
    StoreCensus,
    TenantFigures,
    Totals,
    quantile_ms,
    window_between,
)
from membank_server.domain.telemetry import MetricsReader, Telemetry
from membank_server.services.memories import MemoryService
from membank_server.services.tasks import Background

__all__ = ["Sampler", "pseudonym"]

_log = logging.getLogger("membank.observe")
_PRUNE_SECONDS = 3600.0


def pseudonym(secret: bytes, user_id: str) -> str:
    """The name a tenant has in metrics: ``t-`` and 12 hex digits of an HMAC."""
    return "t-" + hmac.new(secret, user_id.encode(), hashlib.sha256).hexdigest()[:12]


class Sampler:
    """Samples the server into its history; see the module docs."""

    def __init__(
        self,
        history: HistoryStore,
        reader: MetricsReader,
        memories: MemoryService,
        census: StoreCensus,
        telemetry: Telemetry,
        *,
        backend: str,
        dimension: int,
        every: float,
        retention: timedelta,
        top: int,
        census_every: float,
        refresh: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.history = history
        self._reader, self._memories, self._census = reader, memories, census
        self._telemetry = telemetry
        self._backend, self._dimension = backend, dimension
        self.every, self._retention, self._top = every, retention, top
        self._census_every = census_every
        self._refresh = refresh
        self._clock = clock
        self._last: Totals | None = None
        self._figures = Census(0, 0)
        self._top_users: list[tuple[str, str]] = []
        self._census_at = -math.inf
        self._pruned_at = -math.inf
        self._secret: bytes | None = None

    def start(self, tasks: Background) -> None:
        self._last = self._reader.totals()
        tasks.spawn(self._loop(), "sampling the server's figures")
        if self._refresh is not None:
            tasks.every(min(5.0, self.every), self._refreshed, "refreshing gauges")

    async def _refreshed(self) -> None:
        assert self._refresh is not None
        self._refresh()

    async def _loop(self) -> None:
        while True:
            now = self._clock()
            await asyncio.sleep(self.every - now % self.every)
            try:
                await self.tick(math.floor(self._clock() / self.every + 0.5) * self.every)
            except MembankError as exc:
                _log.warning("sampling failed, will retry: %s", exc.message)

    def live_window(self) -> RequestWindow | None:
        """What happened since the last tick (not in the history yet)."""
        if self._last is None:
            return None
        return window_between(self._last, self._reader.totals())

    def tenants(self) -> list[tuple[str, str]]:
        """The last census's largest tenants as (pseudonym, user id), for the operator."""
        return list(self._top_users)

    async def tick(self, moment: float) -> Sample | None:
        """Take one sample at ``moment`` (Unix seconds); the sample, or None on the first."""
        totals = self._reader.totals()
        if self._last is None:
            self._last = totals
            return None
        window = window_between(self._last, totals)
        self._last = totals
        if self._clock() - self._census_at >= self._census_every:
            await self._take_census()
        at = datetime.fromtimestamp(moment, UTC)
        seconds = window.seconds or self.every
        sample = Sample(
            at=at,
            memories=await self._memories.count(),
            users=self._figures.users,
            disk_bytes=self._figures.disk_bytes,
            rss_bytes=totals.rss_bytes,
            rps=window.requests / seconds,
            p95_ms=quantile_ms(window.latency, 0.95),
            p99_ms=quantile_ms(window.latency, 0.99),
            cpu_percent=100 * window.cpu_seconds / seconds,
            errors_per_s=window.server_errors / seconds,
            backend=self._backend,
            dimension=self._dimension,
            queue_depth=totals.queue_depth,
            job_workers=totals.job_workers,
        )
        stored = RequestWindow(
            at, window.seconds, window.requests, window.server_errors, window.client_errors,
            window.latency, window.cpu_seconds,
        )  # fmt: skip
        await self.history.add(sample, stored)
        if self._clock() - self._pruned_at >= _PRUNE_SECONDS:
            self._pruned_at = self._clock()
            await self.history.prune(at - self._retention)
        return sample

    async def _take_census(self) -> None:
        self._census_at = self._clock()
        if self._secret is None:
            self._secret = await self.history.secret("tenant-pseudonyms")
        users, top = await self._census.tenants(self._top)
        figures = []
        named = []
        for user_id, count in top:
            usage = await self._memories.store.usage(user_id)
            name = pseudonym(self._secret, user_id)
            figures.append(TenantFigures(name, count, usage.bytes))
            named.append((name, user_id))
        self._figures = Census(users, await self._census.disk_bytes(), tuple(figures))
        self._top_users = named
        self._telemetry.census(self._figures)
        if not self._census.known:
            _log.info("this store does not tell its users or disk: sampled as 0")
