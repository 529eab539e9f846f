"""Cache warmup: replay the most asked searches of a sample of users into the cache.

Strategies (``cache.warmup_strategy``):

* ``eager``: warm when the server starts, before ``/ready`` answers 200;
* ``lazy``: warm in the background after the server is ready, a batch at a time;
* ``scheduled``: warm on a cron schedule; one instance runs each round (a Redis lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

from membank_server.domain.cron import cron_fields
from membank_server.domain.errors import MembankError
from membank_server.domain.ports import PopularQueries
from membank_server.services.inputs import RecallQuery
from membank_server.services.memories import MemoryService
from membank_server.services.recall_cache import replayable
from membank_server.services.tasks import Background

__all__ = [
    "CacheWarmer",
    "LockFactory",
    "WarmupPlan",
    "WarmupReport",
    "WarmupService",
    "WarmupStatus",
    "in_sample",
    "local_lock",
]

_log = logging.getLogger("membank.warmup")
LockFactory = Callable[[str, float], AbstractAsyncContextManager[bool]]


def in_sample(user_id: str, fraction: float) -> bool:
    """A stable sample of users: the same users are picked on every run and instance."""
    bucket = int.from_bytes(hashlib.sha256(user_id.encode()).digest()[:4], "big")
    return bucket < fraction * 2**32


@contextlib.asynccontextmanager
async def _no_lock(name: str, ttl: float) -> AsyncIterator[bool]:
    yield True


def local_lock() -> LockFactory:
    """A lock for one instance (no Redis): rounds of this process never overlap."""
    held: set[str] = set()

    @contextlib.asynccontextmanager
    async def lock(name: str, ttl: float) -> AsyncIterator[bool]:
        if name in held:
            yield False
            return
        held.add(name)
        try:
            yield True
        finally:
            held.discard(name)

    return lock


@dataclass
class WarmupReport:
    selected: int = 0
    users: int = 0
    warmed: int = 0
    already_cached: int = 0
    failed: int = 0
    skipped_locked: bool = False


class CacheWarmer:
    """Replays popular searches through :meth:`MemoryService.recall`, filling the cache.

    Args:
        memories: The service whose recall fills the cache.
        popular: Where searches were counted.
        lock: Lock factory; a round runs only where the lock is taken.
    """

    def __init__(
        self,
        memories: MemoryService,
        popular: PopularQueries,
        lock: LockFactory | None = None,
    ) -> None:
        self.memories = memories
        self.popular = popular
        self._lock = lock or _no_lock

    async def select(self, top: int, sample: float) -> list[RecallQuery]:
        """The ``top`` most asked searches, kept for the sampled users only."""
        ranked = await self.popular.top(top)
        return [replayable(user, query) for user, query, _ in ranked if in_sample(user, sample)]

    async def run(
        self,
        *,
        top: int,
        sample: float,
        batch_size: int,
        pause: float = 0.0,
        progress: Callable[[int], None] | None = None,
    ) -> WarmupReport:
        """One round; ``pause`` seconds between batches keeps a background round gentle."""
        async with self._lock("membank:warmup", 600.0) as acquired:
            if not acquired:
                return WarmupReport(skipped_locked=True)
            queries = await self.select(top, sample)
            report = WarmupReport(selected=len(queries), users=len({q.user_id for q in queries}))
            for start in range(0, len(queries), batch_size):
                batch = queries[start : start + batch_size]
                outcomes = await asyncio.gather(
                    *(self._one(q) for q in batch), return_exceptions=True
                )
                for outcome in outcomes:
                    if isinstance(outcome, MembankError):
                        report.failed += 1
                    elif isinstance(outcome, BaseException):
                        raise outcome
                    elif outcome == "hit":
                        report.already_cached += 1
                    else:
                        report.warmed += 1
                if progress is not None:
                    progress(len(batch))
                if pause:
                    await asyncio.sleep(pause)
            _log.info("cache warmup: %s", report)
            return report

    async def _one(self, q: RecallQuery) -> str:
        _, outcome = await self.memories.recall(q)
        return outcome


@dataclass(frozen=True)
class WarmupPlan:
    """``cache.warmup_*``: the strategy, its schedule, and a round's size."""

    strategy: str | None = None
    cron: str = "*/15 * * * *"
    top: int = 50
    sample: float = 0.1
    batch_size: int = 32


@dataclass(frozen=True)
class WarmupStatus:
    strategy: str | None
    cron: str | None
    last: WarmupReport | None
    rounds: int


@dataclass
class WarmupService:
    """Warmup rounds of one process: at start by the plan's strategy, on a schedule,
    or when an admin asks; remembers the last round for ``GET /v1/cache/stats``.

    Args:
        warmer: Replays searches; None when the cache (or its counts) is off.
        plan: The configured strategy and round size.
        tasks: Where background rounds run.
    """

    warmer: CacheWarmer | None
    plan: WarmupPlan
    tasks: Background
    _last: WarmupReport | None = field(default=None, init=False)
    _rounds: int = field(default=0, init=False)
    _settled: bool = field(default=False, init=False)
    _scheduler: Any = field(default=None, init=False)

    @property
    def settled(self) -> bool:
        """Whatever must happen before the process is ready has happened (an eager
        round at start; nothing for the other strategies)."""
        return self._settled or self.warmer is None or self.plan.strategy != "eager"

    def status(self) -> WarmupStatus:
        p = self.plan
        cron = p.cron if p.strategy == "scheduled" else None
        return WarmupStatus(p.strategy, cron, self._last, self._rounds)

    async def start(self) -> None:
        """Begin the configured strategy (once the embedder is loaded)."""
        strategy = self.plan.strategy if self.warmer is not None else None
        try:
            if strategy == "eager":
                await self.round()
            elif strategy == "lazy":
                self.tasks.spawn(self.round(pause=0.05), "cache warmup")
            elif strategy == "scheduled":
                from apscheduler.schedulers.asyncio import AsyncIOScheduler
                from apscheduler.triggers.cron import CronTrigger

                self._scheduler = AsyncIOScheduler()
                self._scheduler.add_job(
                    self._scheduled,
                    CronTrigger(**cron_fields(self.plan.cron)),
                    id="membank-warmup",
                    max_instances=1,
                    coalesce=True,
                )
                self._scheduler.start()
        finally:
            self._settled = True

    async def _scheduled(self) -> None:
        try:
            await self.round(pause=0.05)
        except MembankError as exc:
            _log.warning("cache warmup failed: %s", exc.message)

    async def round(
        self,
        *,
        top: int | None = None,
        sample: float | None = None,
        batch_size: int | None = None,
        pause: float = 0.0,
    ) -> WarmupReport:
        """One round now; unset sizes come from the plan."""
        if self.warmer is None:
            return WarmupReport()
        p = self.plan
        report = await self.warmer.run(
            top=top or p.top,
            sample=sample or p.sample,
            batch_size=batch_size or p.batch_size,
            pause=pause,
        )
        self._last = report
        self._rounds += 1
        return report

    async def aclose(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
