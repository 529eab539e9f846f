"""BackupService: write a backup of everything membank keeps, list and prune backups.

A backup holds, as sections of one archive (see ``docs/backup-format.md``):

- ``pg_dump``: a native ``pg_dump -Fc`` of membank's schemas, when PostgreSQL is used;
- ``memories``: every record as stored (field-encrypted values stay sealed, with the
  ids their associated data names), history included; an incremental backup only
  the records that changed since its parent;
- ``index``: the state of every record read, and for an incremental ``erased``: the
  parent's records that are gone (users erased, memories purged);
- ``keys`` and ``teams`` (key hashes, never a token), ``audit``, ``redis`` (the
  popular-query counts; the caches rebuild themselves and are not kept).

Never a data key or the backup key. Consistency: with a store that has snapshots
(PostgreSQL) every record is read from one REPEATABLE READ snapshot, which
``pg_dump`` shares; otherwise pages are read while writes go on, and each memory is
read whole (its record, and its history up to its version) as of some moment of the
backup. Either way a memory written during a backup is in it whole or not at all.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime

from membank_server.domain.backup import BackupInfo
from membank_server.domain.backup_ports import BackupSource
from membank_server.domain.errors import (
    BackupNotFound,
    Conflict,
    MembankError,
    NotEnabled,
)
from membank_server.domain.ports import BackupArchive, MemoryStore, Snapshots
from membank_server.domain.retention import PrunePlan, plan_prune
from membank_server.domain.telemetry import NullTelemetry, Telemetry
from membank_server.services._backup_extras import BackupExtras
from membank_server.services._backup_restore import (
    Progress,
    Reservoir,
    RestorePlan,
    RestoreReport,
    VerifyReport,
    compare_scratch,
    replay,
    restore_chain,
    verify_all,
)
from membank_server.services._backup_run import (
    BackupProgress,
    BackupReport,
    parent_index,
    reading,
    write_backup,
)

__all__ = [
    "Archives",
    "BackupProgress",
    "BackupReport",
    "BackupService",
    "RestorePlan",
    "RestoreReport",
    "Retention",
    "Scratch",
    "VerifyReport",
]

_log = logging.getLogger("membank.backup")
#: Opens the archive at a target URL (None: the configured target).
Archives = Callable[[str | None], BackupArchive]
#: Opens an empty store of a dimension, removed when the block ends.
Scratch = Callable[[int], AbstractAsyncContextManager[MemoryStore]]


@dataclass(frozen=True)
class Retention:
    keep_last: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0

    @property
    def any(self) -> bool:
        return any((self.keep_last, self.keep_daily, self.keep_weekly, self.keep_monthly))


class BackupService:
    """Backups of one process's data.

    Args:
        store: The store as it keeps records (below field encryption: sealed); None
            for a process that only lists, checks and prunes backups.
        archives: Opens the archive of a target.
        source: The backend, dimension and embedder, recorded in each manifest.
        extras: Keys, audit log, durable counts, the database dump, field encryption.
        snapshots: The store that reads from one snapshot (PostgreSQL), if any.
        telemetry: Hears each run's outcome.
        scratch: Opens an empty scratch store of a dimension (a deep verify).
        target_url: The configured target, for messages.
        page_size: Records read per page.
    """

    def __init__(
        self,
        store: MemoryStore | None,
        archives: Archives,
        source: BackupSource,
        *,
        extras: BackupExtras | None = None,
        snapshots: Snapshots | None = None,
        telemetry: Telemetry | None = None,
        scratch: Scratch | None = None,
        target_url: str = "",
        page_size: int = 1000,
    ) -> None:
        self.store, self.archives, self.source = store, archives, source
        self.extras = extras or BackupExtras()
        self._snapshots = snapshots
        self._telemetry = telemetry or NullTelemetry()
        self._page = page_size
        self._scratch = scratch
        self.target_url = target_url
        self._running = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def archive(self, target: str | None = None) -> AsyncIterator[BackupArchive]:
        """The archive at ``target`` (the configured one by default), closed after."""
        opened = self.archives(target)
        try:
            yield opened
        finally:
            await opened.aclose()

    def _store(self) -> MemoryStore:
        if self.store is None:
            raise NotEnabled("this process has no store to back up or restore into")
        return self.store

    @property
    def busy(self) -> bool:
        """A backup is running in this process."""
        return self._running.locked()

    async def list(self, target: str | None = None) -> builtins.list[BackupInfo]:
        async with self.archive(target) as archive:
            return await archive.list()

    # -- run -----------------------------------------------------------------

    async def run(
        self,
        *,
        incremental: bool = False,
        target: str | None = None,
        progress: Callable[[BackupProgress], None] | None = None,
    ) -> BackupReport:
        """Write one backup (see the module docs); the manifest goes last.

        Raises:
            Conflict: a backup is already running in this process.
            BackupNotFound: ``incremental`` without a complete backup to build on.
            BackupError, BackupTargetUnavailable, StorageUnavailable: the backup failed;
                nothing complete-looking was left behind.
        """
        if self._running.locked():
            raise Conflict("a backup is already running in this process")
        started = time.monotonic()
        async with self._running:
            try:
                async with self.archive(target) as archive:
                    parent = await parent_index(archive, self.source) if incremental else None
                    report = await write_backup(
                        archive,
                        reading(self._store(), self._snapshots),
                        self._store(),
                        self.source,
                        self.extras,
                        parent,
                        progress or _silent,
                        page=self._page,
                    )
            except BaseException as exc:
                if isinstance(exc, MembankError):
                    _log.error("backup failed: %s", exc.message)
                self._telemetry.backup("failure", time.monotonic() - started, 0, 0)
                raise
        m = report.manifest
        self._telemetry.backup("success", report.seconds, m.stored_bytes, report.records)
        _log.info(
            "backup %s (%s) written to %s: %d records, %d bytes in %.1fs",
            m.id, m.kind, target or "the configured target", report.records, m.stored_bytes,
            report.seconds,
        )  # fmt: skip
        return report

    # -- restore and verify ----------------------------------------------------

    async def restore(
        self,
        backup_id: str,
        *,
        into: MemoryStore | None = None,
        plan: RestorePlan | None = None,
        target: str | None = None,
        progress: Progress | None = None,
    ) -> RestoreReport:
        """Restore a backup (its chain, oldest first) into ``into`` (this store by
        default), with the keys, teams, audit log and counts it holds; see
        :mod:`~membank_server.services._backup_restore`.

        Raises:
            BackupKeyError, BackupCorrupt, DimensionMismatch, Conflict, BackupError:
                refused before anything was written.
        """
        async with self.archive(target) as archive:
            return await restore_chain(
                archive,
                backup_id,
                into or self._store(),
                self.source,
                self.extras,
                plan or RestorePlan(),
                progress or _quiet,
            )

    async def verify(
        self,
        backup_id: str,
        *,
        deep: bool = False,
        sample: int = 100,
        target: str | None = None,
        progress: Progress | None = None,
    ) -> VerifyReport:
        """Read every part of the backup and of the backups it builds on, and check it;
        with ``deep`` also restore them into a scratch store and compare it with the
        backup's index and a sample of ``sample`` records, vectors included.

        Raises:
            BackupCorrupt: a part fails (named); BackupKeyError: wrong or missing key.
        """
        tell = progress or _quiet
        async with self.archive(target) as archive:
            chain = await archive.chain(backup_id)
            readers = [await archive.reader(m.id) for m in chain]
            report = VerifyReport(
                backup_id=backup_id,
                chain=tuple(m.id for m in chain),
                parts=sum(m.parts for m in chain),
                records=await verify_all(readers, tell),
                stored_bytes=sum(m.stored_bytes for m in chain),
            )
            if not deep:
                return report
            if self._scratch is None:
                raise NotEnabled("a deep verify needs a scratch store, which this process has not")
            dimension = chain[-1].source.dimension or self.source.dimension or 1
            picked, restored = Reservoir(sample), 0

            def step(n: int) -> None:
                nonlocal restored
                restored += n
                tell("restore", restored, None)

            async with self._scratch(dimension) as scratch:
                for reader in readers:
                    seen = picked if reader is readers[-1] else None
                    await replay(reader, scratch, RestorePlan(force=True), step, seen)
                tell("compare", 0, None)
                await compare_scratch(readers[-1], scratch, picked.items, report)
            return report

    # -- prune ---------------------------------------------------------------

    async def prune(
        self,
        retention: Retention,
        *,
        dry_run: bool = False,
        target: str | None = None,
        now: datetime | None = None,
    ) -> PrunePlan:
        """Delete the backups ``retention`` does not keep (never the newest complete one,
        never a parent a kept backup needs), children first; then leftovers of
        interrupted writes older than a day.

        Raises:
            InvalidInput: no rule, or a negative count.
        """
        async with self.archive(target) as archive:
            plan = plan_prune(
                await archive.list(),
                now=now or datetime.now(UTC),
                keep_last=retention.keep_last,
                keep_daily=retention.keep_daily,
                keep_weekly=retention.keep_weekly,
                keep_monthly=retention.keep_monthly,
            )
            if dry_run:
                return plan
            for doomed in plan.delete:
                try:
                    await archive.delete(doomed.id)
                except BackupNotFound:
                    continue  # deleted meanwhile by another prune
            await archive.cleanup(86_400.0)
            return plan


def _quiet(phase: str, done: int, total: int | None) -> None:
    return None


def _silent(_: BackupProgress) -> None:
    return None
