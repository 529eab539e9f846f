"""What the admin endpoints tell about the server itself: history, SLIs, tenants, totals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from membank_server.domain.capacity import Sample
from membank_server.domain.errors import InvalidInput
from membank_server.domain.observe import (
    SliReport,
    Totals,
    TuningEvent,
    merge_windows,
    sli_report,
)
from membank_server.domain.slo import Slo
from membank_server.domain.telemetry import MetricsReader
from membank_server.services.sampler import Sampler

__all__ = ["MAX_WINDOW", "ObserveService"]

#: The longest SLI window asked for at once.
MAX_WINDOW = timedelta(days=90)


class ObserveService:
    """The server's view of itself: its history, its SLIs against the objectives,
    the totals the tuner compares, and the tuning journal."""

    def __init__(self, sampler: Sampler, reader: MetricsReader, slo: Slo) -> None:
        self._sampler = sampler
        self._reader = reader
        self.slo = slo
        self.history = sampler.history

    async def samples(self, since: datetime | None) -> list[Sample]:
        return await self.history.samples(since)

    async def sli(self, window: timedelta) -> SliReport:
        """The SLIs of the last ``window`` (at most :data:`MAX_WINDOW`: a longer one
        reads that much, and the report says the seconds it covers): the kept windows
        plus what came since the last sample."""
        if window <= timedelta(0):
            raise InvalidInput("window must be positive")
        window = min(window, MAX_WINDOW)
        now = datetime.now(UTC)
        kept = await self.history.windows(now - window)
        live = self._sampler.live_window()
        windows = [*kept, *([live] if live is not None else [])]
        merged = merge_windows(windows)
        covered = min(window.total_seconds(), merged.seconds) if merged else 0.0
        return sli_report(merged, self.slo, covered)

    def totals(self) -> Totals:
        return self._reader.totals()

    def tenants(self) -> list[tuple[str, str]]:
        """The largest tenants of the last census: (pseudonym, user id)."""
        return self._sampler.tenants()

    async def record(self, event: TuningEvent) -> None:
        await self.history.add_tuning(event)

    async def journal(self, limit: int) -> list[TuningEvent]:
        return await self.history.tuning(limit)
