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
from dataclasses import dataclass

from membank_server.domain.errors import MembankError
from membank_server.domain.ports import PopularQueries
from membank_server.services.inputs import RecallQuery
from membank_server.services.memories import MemoryService
from membank_server.services.recall_cache import replayable

__all__ = ["CacheWarmer", "WarmupReport", "in_sample", "local_lock"]

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
