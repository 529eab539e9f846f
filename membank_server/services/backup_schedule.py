"""Scheduled backups: a cron schedule in the server, one instance per round.

Each round takes a lock first (Redis when the cache has one, else a PostgreSQL
advisory lock when PostgreSQL is used, else the process's own), so of several
instances sharing a store one runs it and the others skip. Every ``full_every``-th
backup is full, counted from the catalog (so instances agree); the others are
incremental. After a success the retention policy prunes the target; a failure is
logged and sent to the alert webhook. Each run's outcome, duration, bytes and
memories are metrics (``BackupService.run`` reports them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from membank_server.domain.cron import cron_fields
from membank_server.domain.errors import Conflict, MembankError
from membank_server.domain.ports import BackupAlerts
from membank_server.services.backup import BackupService, Retention
from membank_server.services.warmup import LockFactory, local_lock

__all__ = ["BackupScheduler", "SchedulePlan", "ScheduleStatus"]

_log = logging.getLogger("membank.backup")
_LOCK = "membank:backup"


@dataclass(frozen=True)
class SchedulePlan:
    cron: str
    full_every: int = 1
    retention: Retention = field(default_factory=Retention)
    lock_seconds: float = 6 * 3600.0


@dataclass(frozen=True)
class ScheduleStatus:
    cron: str | None
    next_run: datetime | None
    runs: int
    failures: int
    skipped: int
    #: The last round: ``outcome`` (success, failure), ``at``, ``backup``, ``error``...
    last: dict[str, Any] | None


class BackupScheduler:
    """Runs :class:`BackupService` on ``plan``'s schedule (see the module docs).

    Args:
        service: What writes and prunes backups.
        plan: The schedule; None: no scheduled backups (status only).
        lock: Whoever holds it runs the round.
        alerts: Told of each failed round.
    """

    def __init__(
        self,
        service: BackupService,
        plan: SchedulePlan | None,
        *,
        lock: LockFactory | None = None,
        alerts: BackupAlerts | None = None,
    ) -> None:
        self.service, self.plan = service, plan
        self._lock = lock or local_lock()
        self._alerts = alerts
        self._scheduler: Any = None
        self._round: asyncio.Task[Any] | None = None
        self._runs = self._failures = self._skipped = 0
        self._last: dict[str, Any] | None = None

    async def start(self) -> None:
        if self.plan is None:
            return
        from apscheduler.schedulers.asyncio import AsyncIOScheduler
        from apscheduler.triggers.cron import CronTrigger

        self._scheduler = AsyncIOScheduler()
        self._scheduler.add_job(
            self.round,
            CronTrigger(**cron_fields(self.plan.cron)),
            id="membank-backup",
            max_instances=1,
            coalesce=True,
        )
        self._scheduler.start()

    async def aclose(self) -> None:
        """Stop the schedule; a round running is cancelled (its parts removed, no alert)."""
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        running, self._round = self._round, None
        if running is not None and not running.done():
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running

    def status(self) -> ScheduleStatus:
        next_run = None
        if self._scheduler is not None:
            job = self._scheduler.get_job("membank-backup")
            next_run = job.next_run_time if job is not None else None
        return ScheduleStatus(
            cron=self.plan.cron if self.plan else None,
            next_run=next_run,
            runs=self._runs,
            failures=self._failures,
            skipped=self._skipped,
            last=dict(self._last) if self._last else None,
        )

    async def _incremental_due(self) -> bool:
        assert self.plan is not None
        if self.plan.full_every <= 1:
            return False
        complete = [b for b in await self.service.list() if b.complete]
        since_full = 0
        for b in reversed(complete):
            if b.kind != "incremental":
                break
            since_full += 1
        return bool(complete) and since_full + 1 < self.plan.full_every

    async def round(self) -> None:
        """One scheduled backup, where the lock is taken; never raises."""
        assert self.plan is not None
        at = datetime.now(UTC)
        self._round = asyncio.current_task()
        try:
            async with self._lock(_LOCK, self.plan.lock_seconds) as held:
                if not held:
                    self._skipped += 1
                    return
                self._runs += 1
                report = await self.service.run(incremental=await self._incremental_due())
                pruned = 0
                if self.plan.retention.any:
                    pruned = len((await self.service.prune(self.plan.retention)).delete)
        except Conflict:
            self._skipped += 1  # a backup an operator started is running here
            return
        except Exception as exc:  # noqa: BLE001 - a round is reported, never lost in the scheduler
            await self._failed(at, exc)
            return
        m = report.manifest
        self._last = {
            "outcome": "success",
            "at": at.isoformat(),
            "backup": m.id,
            "kind": m.kind,
            "records": report.records,
            "stored_bytes": m.stored_bytes,
            "seconds": round(report.seconds, 3),
            "pruned": pruned,
        }

    async def _failed(self, at: datetime, exc: Exception) -> None:
        self._failures += 1
        known = isinstance(exc, MembankError)
        error = exc.message if isinstance(exc, MembankError) else type(exc).__name__
        if known:
            _log.error("scheduled backup failed: %s", error)
        else:
            _log.exception("scheduled backup failed unexpectedly")
        self._last = {"outcome": "failure", "at": at.isoformat(), "error": error}
        if self._alerts is not None:
            await self._alerts.failed(
                {
                    "at": at.isoformat(),
                    "error": error,
                    "code": getattr(exc, "code", "error"),
                    "target": self.service.target_url,
                }
            )
