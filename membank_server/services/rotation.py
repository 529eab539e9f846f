"""DataKeyRotation: re-seal every stored record under the active data key.

After ``membank keys add`` made a new key active, records sealed with older keys
(and rows written before encryption was on) are found with ``scan_stale`` and
written back, which seals them with the active key; once ``key_usage`` shows only
the active key, the old ones can be retired.

A record is rewritten under its user's lock, from a fresh read: a user's write
that landed between the scan and the rewrite is kept (it was sealed with the
active key, so the record is skipped), never overwritten by the scanned copy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from membank_server.domain.errors import Conflict
from membank_server.domain.model import MemoryRecord
from membank_server.domain.ports import MemoryStore, Resealable
from membank_server.services.tasks import Background

__all__ = ["DataKeyRotation", "ResealableStore", "RotationState", "RotationStatus"]

RotationState = Literal["idle", "running", "done", "failed"]
Hold = Callable[[Iterable[str]], AbstractAsyncContextManager[None]]


class ResealableStore(MemoryStore, Resealable, Protocol):
    """A store with encrypted fields: both ports at once (``EncryptedStore``)."""


@dataclass(frozen=True, slots=True)
class RotationStatus:
    """Where a rotation stands.

    ``total`` counts the records that had a field not sealed with ``active_key``
    when the run began (from ``key_usage``, so a record with fields under two old
    keys counts twice); ``done`` the records rewritten so far. ``usage_before`` and
    ``usage_after`` are ``key_usage`` at the start and at the end.
    """

    state: RotationState = "idle"
    active_key: str | None = None
    total: int = 0
    done: int = 0
    usage_before: dict[str, int] = field(default_factory=dict)
    usage_after: dict[str, int] = field(default_factory=dict)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None


def _utcnow() -> datetime:
    return datetime.now(UTC)


class DataKeyRotation:
    """Re-seals stale records one page at a time; one run at a time per instance.

    Args:
        store: The encrypted store (MemoryStore and Resealable); public as ``store``
            for the admin API's key usage.
        hold: Per-user locks, ``MemoryService.locks.hold``, so a rewrite never races
            a user's read-modify-write.
        page_size: Records scanned per page.
        clock: The current time.
        tasks: Where :meth:`begin` runs a rotation (a server's background tasks).
    """

    def __init__(
        self,
        store: ResealableStore,
        hold: Hold,
        *,
        page_size: int = 500,
        clock: Callable[[], datetime] = _utcnow,
        tasks: Background | None = None,
    ) -> None:
        self.store = store
        self._tasks = tasks or Background()
        self._hold = hold
        self._page_size = page_size
        self._clock = clock
        self._status = RotationStatus()
        self._running = False

    @property
    def status(self) -> RotationStatus:
        return self._status

    @property
    def active_key(self) -> str:
        return self.store.active_key

    async def usage(self) -> dict[str, int]:
        """Records per data key now; a full scan, so while a run is going on, the
        figures it began with."""
        if self._status.state == "running":
            return dict(self._status.usage_before)
        return await self.store.key_usage()

    async def begin(self) -> RotationStatus:
        """Start a run in the background; its status, once it has begun.

        Raises:
            Conflict: a rotation is already running.
        """
        if self._status.state == "running" or self._running:
            raise Conflict("a rotation is running; follow it at GET /v1/admin/encryption")
        self._tasks.spawn(self.run(), "data-key rotation")
        # Let the run begin: the answer names it (started_at) and shows it running.
        await asyncio.sleep(0)
        return self._status

    async def run(
        self, on_progress: Callable[[RotationStatus], None] | None = None
    ) -> RotationStatus:
        """Reload the keys and re-seal every record not on the active key.

        Raises:
            Conflict: a rotation is already running.
        """
        # Checked and set with no await in between: no other task can slip in.
        if self._running:
            raise Conflict("a data-key rotation is already running")
        self._running = True
        try:
            return await self._run(on_progress or (lambda _: None))
        finally:
            self._running = False

    async def _run(self, report: Callable[[RotationStatus], None]) -> RotationStatus:
        self._status = RotationStatus("running", started_at=self._clock())
        try:
            await asyncio.to_thread(self.store.reload_keys)
            active = self.store.active_key
            before = await self.store.key_usage()
            total = sum(n for key_id, n in before.items() if key_id != active)
            self._update(report, active_key=active, usage_before=before, total=total)
            cursor: str | None = None
            while True:
                stale, cursor = await self.store.scan_stale(cursor, self._page_size)
                by_user: dict[str, list[MemoryRecord]] = {}
                for record in stale:
                    by_user.setdefault(record.memory.user_id, []).append(record)
                for user_id, records in by_user.items():
                    resealed = await self._reseal(user_id, records)
                    self._update(report, done=self._status.done + resealed)
                if cursor is None:
                    break
            after = await self.store.key_usage()
            self._update(report, state="done", usage_after=after, finished_at=self._clock())
        except BaseException as exc:
            # Recorded for `status`, then raised: a failed or cancelled run is never "done".
            error = str(exc) or type(exc).__name__
            self._update(report, state="failed", error=error, finished_at=self._clock())
            raise
        return self._status

    async def _reseal(self, user_id: str, scanned: Sequence[MemoryRecord]) -> int:
        async with self._hold([user_id]):
            fresh = await self.store.get(user_id, [r.memory.id for r in scanned])
            # Gone: nothing to do. Otherwise the record as it is now (read under the
            # user's lock) is written back with the history the scan read (whole and
            # opened): a user's change since the scan sealed only its own new version,
            # the older events are re-sealed here.
            todo = [
                replace(fresh[r.memory.id], history=r.history)
                for r in scanned
                if r.memory.id in fresh
            ]
            if todo:
                await self.store.upsert(todo)
        return len(todo)

    def _update(self, report: Callable[[RotationStatus], None], **changes: Any) -> None:
        self._status = replace(self._status, **changes)
        report(self._status)
