"""PgOutbox: a durable queue, in PostgreSQL, of writes a secondary store has yet to get.

One row per write: ``op`` (``upsert``, ``delete_user`` or ``purge_expired``) and
a jsonb ``payload`` (whole records in the payload layout of
:mod:`membank_server.storage._payload` plus their vectors, a user id, or a
time). A row is deleted only after the secondary applied it, so a crash at any
point leaves it to be applied again after restart; every operation is
idempotent when replayed in order.

Order is the point. :meth:`PgOutbox.drain` applies the oldest rows first, one
drainer at a time across processes (a transaction-level advisory lock), and
stops at the first failure: that row gets ``attempts + 1``, its ``last_error``
and a ``next_attempt_at`` with capped exponential backoff and jitter, and the
rows behind it wait, so the secondary never sees a later write of a user before
an earlier one. The flip side: a row the secondary refuses for good (a value it
cannot store) holds the queue until an operator removes it; its error is kept
in ``last_error`` and reported on every retry. :class:`OutboxDrainer` runs
:meth:`PgOutbox.drain` in the background and reports ``outbox_applied``,
``outbox_retry`` and ``outbox_unavailable`` events.

:meth:`PgOutbox.enqueue_on` appends inside a caller's transaction (the primary's
write, when that primary is in the same database) after taking a
transaction-level advisory lock per user, so two processes writing for one user
commit, and number their rows, one after the other.

This module is the outbox's face: :class:`PgOutbox` lives in :mod:`._pg_outbox`,
the entries in :mod:`._outbox_entries`, and :class:`OutboxDrainer` here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

from membank_server.domain.errors import StorageUnavailable
from membank_server.domain.model import MemoryRecord
from membank_server.domain.ports import MemoryStore
from membank_server.pg import InTransaction
from membank_server.storage._outbox_entries import (
    DELETE_USER,
    PURGE_EXPIRED,
    UPSERT,
    DrainReport,
    Entry,
    OutboxEntry,
    apply_entry,
    decode_records,
    delete_user_entry,
    purge_entry,
    upsert_entry,
)
from membank_server.storage._pg_outbox import PgOutbox

__all__ = [
    "DELETE_USER",
    "PURGE_EXPIRED",
    "UPSERT",
    "AtomicWriter",
    "DrainReport",
    "Entry",
    "EventSink",
    "InTransaction",
    "OutboxDrainer",
    "OutboxEntry",
    "PgOutbox",
    "apply_entry",
    "decode_records",
    "delete_user_entry",
    "purge_entry",
    "upsert_entry",
]

#: Told ``(kind, fields)`` about the outbox's work: metrics and logs.
EventSink = Callable[[str, dict[str, Any]], None]


@runtime_checkable
class AtomicWriter(Protocol):
    """A store whose writes can run :meth:`PgOutbox.enqueue_on` in their own transaction.

    ``PgVectorStore`` is one; ``dsn`` tells whether it shares the outbox's database.
    """

    dsn: str

    async def upsert(
        self,
        records: Sequence[MemoryRecord],
        *,
        claims: Collection[UUID] = (),
        also: InTransaction | None = None,
    ) -> None: ...

    async def delete_user(self, user_id: str, *, also: InTransaction | None = None) -> int: ...

    async def purge_expired(self, now: datetime, *, also: InTransaction | None = None) -> int: ...


class OutboxDrainer:
    """Applies an outbox to a store in the background, oldest entry first.

    Args:
        outbox: The queue.
        target: The store the entries are for (a hybrid's secondary).
        on_event: Told about every entry applied or retried, and outages.
        batch: Entries applied per transaction.
        interval: Seconds between looks at an idle outbox (other processes' entries).
    """

    def __init__(
        self,
        outbox: PgOutbox,
        target: MemoryStore,
        *,
        on_event: EventSink | None = None,
        batch: int = 100,
        interval: float = 1.0,
    ) -> None:
        self.outbox, self.target = outbox, target
        self._on_event = on_event
        self._batch, self._interval = batch, interval
        self._task: asyncio.Task[None] | None = None
        self._wake, self._stop = asyncio.Event(), asyncio.Event()

    def _emit(self, kind: str, fields: dict[str, Any]) -> None:
        if self._on_event is not None:
            self._on_event(kind, fields)

    def start(self) -> None:
        if self._task is None:
            self._stop.clear()
            self._task = asyncio.create_task(self._run(), name="membank-outbox-drainer")

    async def stop(self) -> BaseException | None:
        """Stop after the current pass; what killed the drainer before, if anything did."""
        task, self._task = self._task, None
        if task is None:
            return None
        self._stop.set()
        self._wake.set()
        await asyncio.wait({task})
        return None if task.cancelled() else task.exception()

    def wake(self) -> None:
        """Something was queued: look now rather than at the next interval."""
        self._wake.set()

    def check(self) -> None:
        """Raise when the drainer died: its queue would only grow."""
        task = self._task
        if task is not None and task.done() and not task.cancelled():
            error = task.exception()
            if error is not None:
                raise StorageUnavailable(f"the outbox drainer has stopped: {error!r}") from error

    async def drain(self) -> DrainReport:
        """One pass now: apply what is due, report it."""
        report = await self.outbox.drain(
            lambda entry: apply_entry(self.target, entry), batch=self._batch
        )
        now = datetime.now(UTC)
        for e in report.applied:
            lag = (now - e.created_at).total_seconds()
            fields = {"id": e.id, "op": e.op, "attempts": e.attempts + 1, "lag_seconds": lag}
            self._emit("outbox_applied", fields)
        if report.failed is not None and report.error is not None:
            e = report.failed
            self._emit(
                "outbox_retry",
                {"id": e.id, "op": e.op, "attempts": e.attempts + 1,
                 "error": report.error.message, "retry_in": report.wait},
            )  # fmt: skip
        return report

    async def _pause(self, seconds: float, *, wakeable: bool) -> None:
        event = self._wake if wakeable else self._stop
        with contextlib.suppress(TimeoutError):  # the pause simply ran its course
            await asyncio.wait_for(event.wait(), timeout=seconds)

    async def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            self._wake.clear()  # an enqueue from now on ends the next wakeable pause
            try:
                report = await self.drain()
            except StorageUnavailable as exc:  # the outbox's own database
                failures += 1
                delay = self.outbox.backoff(failures)
                self._emit("outbox_unavailable", {"error": exc.message, "retry_in": delay})
                await self._pause(delay, wakeable=False)
                continue
            failures = 0
            if report.failed is None and report.wait is None and not report.busy:
                if len(report.applied) >= self._batch:
                    continue  # a full batch: more may be due
                await self._pause(self._interval, wakeable=True)
            else:
                # The head is not due yet (or another process drains): new entries
                # queue behind it, so an enqueue is no reason to look sooner.
                wait = report.wait if report.wait is not None else self._interval
                await self._pause(wait, wakeable=False)
