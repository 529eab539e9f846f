"""Cache administration: outcomes, the most asked searches, flushes and warmup rounds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from membank_server.domain.errors import NotEnabled
from membank_server.services.inputs import RecallQuery
from membank_server.services.recall_cache import CacheCounts, RecallCache, replayable
from membank_server.services.tasks import Background
from membank_server.services.warmup import WarmupReport, WarmupService, WarmupStatus, in_sample

__all__ = ["CacheAdmin", "CacheReport", "PopularSearch"]


@dataclass(frozen=True)
class CacheReport:
    enabled: bool
    warmup: WarmupStatus
    #: None when the cache is off.
    counts: CacheCounts | None = None


@dataclass(frozen=True)
class PopularSearch:
    user_id: str
    count: float
    search: RecallQuery


@dataclass
class CacheAdmin:
    """What ``/v1/cache`` does.

    Args:
        cache: The recall cache; None when ``cache.enabled`` is off.
        warmup: Warmup rounds and their status.
        tasks: Where lazy rounds run.
    """

    cache: RecallCache | None
    warmup: WarmupService
    tasks: Background
    _off: str = field(default="the cache is off on this server (cache.enabled=false)", init=False)

    def _enabled(self) -> RecallCache:
        if self.cache is None:
            raise NotEnabled(self._off)
        return self.cache

    def report(self) -> CacheReport:
        counts = self.cache.stats.snapshot() if self.cache is not None else None
        return CacheReport(self.cache is not None, self.warmup.status(), counts)

    async def popular(self, k: int, sample: float) -> list[PopularSearch]:
        """The ``k`` most asked searches, of the users in a stable ``sample``.

        Raises:
            NotEnabled: the cache is off.
        """
        cache = self._enabled()
        if cache.popular is None:
            return []
        ranked = await cache.popular.top(k)
        return [
            PopularSearch(user, count, replayable(user, query))
            for user, query, count in ranked
            if in_sample(user, sample)
        ]

    async def warm(
        self,
        strategy: Literal["eager", "lazy"],
        *,
        top: int | None = None,
        sample: float | None = None,
        batch_size: int | None = None,
    ) -> WarmupReport | None:
        """One round now (``eager``: its report) or in the background (``lazy``: None).

        Raises:
            NotEnabled: the cache is off, or it counts no searches to warm from.
        """
        self._enabled()
        if self.warmup.warmer is None:
            raise NotEnabled("no popular-query counts to warm from")
        if strategy == "lazy":
            round_ = self.warmup.round(top=top, sample=sample, batch_size=batch_size, pause=0.05)
            self.tasks.spawn(round_, "cache warmup")
            return None
        return await self.warmup.round(top=top, sample=sample, batch_size=batch_size)

    async def flush(self, user_id: str | None = None) -> int:
        """Drop cached searches of one user, or of everyone; how many were dropped.

        Raises:
            NotEnabled: the cache is off.
        """
        return await self._enabled().flush(user_id)
