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
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

from membank_server.domain.errors import ConfigError, MembankError, StorageUnavailable
from membank_server.domain.model import MemoryRecord
from membank_server.domain.ports import MemoryStore
from membank_server.storage._payload import (
    history_event_from_payload,
    history_event_to_payload,
    legacy_history,
    record_from_payload,
    record_to_payload,
)
from membank_server.storage._pg_schema import (
    DRIVER_ERRORS,
    Connector,
    Migration,
    PgNames,
    apply_migrations,
    check_ident,
    forget_component,
    lock_schema,
    to_json,
)

__all__ = [
    "DELETE_USER",
    "PURGE_EXPIRED",
    "UPSERT",
    "AtomicWriter",
    "DrainReport",
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

UPSERT, DELETE_USER, PURGE_EXPIRED = "upsert", "delete_user", "purge_expired"
#: What is queued: an operation and its JSON payload.
Entry = tuple[str, dict[str, Any]]
#: Told ``(kind, fields)`` about the outbox's work: metrics and logs.
EventSink = Callable[[str, dict[str, Any]], None]
#: Work run on a write's connection inside its transaction (``enqueue_on`` bound).
InTransaction = Callable[[Any], Awaitable[None]]


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


def upsert_entry(records: Sequence[MemoryRecord]) -> Entry:
    return UPSERT, {
        "records": [
            {
                "id": str(r.memory.id),
                "payload": record_to_payload(r),
                "vector": list(r.vector),
                "history": [history_event_to_payload(r.memory, h) for h in r.history],
            }
            for r in records
        ]
    }


def delete_user_entry(user_id: str) -> Entry:
    return DELETE_USER, {"user_id": user_id}


def purge_entry(now: datetime) -> Entry:
    return PURGE_EXPIRED, {"now": now.isoformat()}


def decode_records(payload: Mapping[str, Any]) -> list[MemoryRecord]:
    # Entries queued before history moved out of the payload carry it inside it.
    return [
        record_from_payload(
            r["id"],
            r["payload"],
            r["vector"] or None,
            tuple(history_event_from_payload(h) for h in r.get("history", ()))
            or legacy_history(r["payload"])
            or (),
        )
        for r in payload["records"]
    ]


def _users(entries: Sequence[Entry]) -> list[str]:
    users: set[str] = set()
    for op, payload in entries:
        if op == UPSERT:
            users.update(r["payload"]["user_id"] for r in payload["records"])
        elif op == DELETE_USER:
            users.add(payload["user_id"])
    return sorted(users)


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    id: int
    op: str
    payload: Mapping[str, Any]
    attempts: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DrainReport:
    """What one :meth:`PgOutbox.drain` did.

    ``applied`` were applied and deleted; ``failed`` is the entry that stopped
    the pass, with its ``error``; ``wait`` is how long until the head of the
    queue is due again (None when the queue ran dry); ``busy`` means another
    drainer held the queue.
    """

    applied: tuple[OutboxEntry, ...] = ()
    failed: OutboxEntry | None = None
    error: MembankError | None = None
    wait: float | None = None
    busy: bool = False


class PgOutbox:
    """The outbox table ``<schema>.<prefix>_outbox`` and the one pool that works on it.

    Args:
        dsn: libpq URL; give the primary's DSN to enqueue in its transactions.
        schema: Schema holding the table (created when missing).
        table_prefix: The table is ``<prefix>_outbox``.
        pool_min: Connections kept open.
        pool_max: Most connections open at once.
        connect_timeout: Seconds to open a connection or wait for a pooled one.
        command_timeout: Client-side seconds per statement.
        statement_timeout_ms: Server-side limit per statement.
        migrate: Create the table in :meth:`start` when missing.
        retry_base: Seconds before the first retry of a failed entry.
        retry_cap: Most seconds between two retries.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "membank",
        table_prefix: str = "memories",
        pool_min: int = 1,
        pool_max: int = 4,
        connect_timeout: float = 10.0,
        command_timeout: float = 30.0,
        statement_timeout_ms: int = 10_000,
        migrate: bool = True,
        retry_base: float = 0.5,
        retry_cap: float = 60.0,
    ) -> None:
        self.dsn = dsn
        self.names = PgNames(check_ident(schema, "schema"), check_ident(table_prefix, "prefix"))
        self.connector = Connector(dsn, connect_timeout, command_timeout, statement_timeout_ms)
        self.migrate_on_start = migrate
        self.retry_base, self.retry_cap = retry_base, retry_cap
        self._pool_size = (pool_min, pool_max)
        self._component = f"outbox:{self.names.prefix}"
        self._table = self.names.q(self.names.outbox)
        self._pool: Any = None

    # -- lifecycle ---------------------------------------------------------

    def _migrations(self, _ext: str | None) -> list[Migration]:
        return [
            Migration(
                1,
                (
                    f"CREATE TABLE {self._table} (id bigserial PRIMARY KEY, op text NOT NULL,"
                    " payload jsonb NOT NULL, attempts int NOT NULL DEFAULT 0, last_error text,"
                    " created_at timestamptz NOT NULL DEFAULT now(),"
                    " next_attempt_at timestamptz NOT NULL DEFAULT now())",
                ),
            )
        ]

    async def migrate(self) -> list[int]:
        """Create the outbox table when missing; the migration versions applied now."""
        async with self.connector.session("migrate the outbox") as conn:
            return await apply_migrations(
                conn, self.names, self._component, self._migrations, needs_vector=False
            )

    async def start(self) -> None:
        if self.migrate_on_start:
            await self.migrate()
        if self._pool is None:
            self._pool = await self.connector.pool(self._pool_size)

    async def aclose(self) -> None:
        if self._pool is None:
            return
        pool, self._pool = self._pool, None
        try:
            await pool.close()
        except DRIVER_ERRORS as exc:
            raise self.connector.translate(exc, "close the outbox pool") from exc

    async def drop(self) -> None:
        """Drop the outbox table and whatever it still holds, then close the pool."""
        async with self.connector.session("drop the outbox") as conn, conn.transaction():
            await lock_schema(conn)
            await conn.execute(f"DROP TABLE IF EXISTS {self._table}")
            await forget_component(conn, self.names, self._component)
        await self.aclose()

    def backoff(self, attempts: int) -> float:
        """Seconds before retry number ``attempts``: doubling, capped, with jitter."""
        delay = min(self.retry_cap, self.retry_base * 2.0 ** max(attempts - 1, 0))
        return delay * random.uniform(0.5, 1.0)

    # -- plumbing ----------------------------------------------------------

    async def _run(self, what: str, op: Callable[[Any], Awaitable[Any]]) -> Any:
        if self._pool is None:
            raise StorageUnavailable(f"the outbox ({self.connector.where}) is not open")
        try:
            async with (
                self._pool.acquire(timeout=self.connector.connect_timeout) as conn,
                conn.transaction(),
            ):
                return await op(conn)
        except DRIVER_ERRORS as exc:
            raise self.connector.translate(exc, what) from exc

    # -- queue -------------------------------------------------------------

    async def enqueue_on(self, conn: Any, entries: Sequence[Entry]) -> None:
        """Append entries on a connection inside the caller's open transaction.

        Run it first in that transaction: the per-user locks it takes then order
        the whole write against other processes' writes for the same users.
        """
        users = _users(entries)
        if users:
            await conn.execute(
                "SELECT count(pg_advisory_xact_lock(k)) FROM (SELECT DISTINCT"
                " hashtextextended('membank-outbox:' || u, 0) AS k"
                " FROM unnest($1::text[]) AS u ORDER BY k) AS locks",
                users,
            )
        await conn.execute(
            f"INSERT INTO {self._table} (op, payload)"
            " SELECT e.op, e.payload::jsonb FROM unnest($1::text[], $2::text[])"
            " WITH ORDINALITY AS e(op, payload, n) ORDER BY e.n",
            [op for op, _ in entries],
            [to_json(payload) for _, payload in entries],
        )

    async def enqueue(self, entries: Sequence[Entry]) -> None:
        """Append entries in a transaction of their own, durable when this returns."""
        await self._run(
            "queue writes for the secondary store", lambda c: self.enqueue_on(c, entries)
        )

    async def size(self) -> int:
        sql = f"SELECT count(*) FROM {self._table}"
        n: int = await self._run("count the outbox", lambda c: c.fetchval(sql))
        return n

    async def pending(self) -> bool:
        sql = f"SELECT EXISTS (SELECT 1 FROM {self._table} ORDER BY id LIMIT 1)"
        found: bool = await self._run("look at the outbox", lambda c: c.fetchval(sql))
        return found

    async def drain(
        self, apply: Callable[[OutboxEntry], Awaitable[None]], *, batch: int = 100
    ) -> DrainReport:
        """Apply due entries oldest first until one fails; delete those applied.

        ``apply`` raising a :class:`MembankError` fails that entry (it is retried
        after :meth:`backoff`); any other exception propagates and the pass rolls
        back, so every entry of it will be applied again.
        """

        async def op(conn: Any) -> DrainReport:
            locked = await conn.fetchval(
                "SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))", self._table
            )
            if not locked:
                return DrainReport(busy=True)
            rows = await conn.fetch(
                "SELECT id, op, payload, attempts, created_at,"
                " extract(epoch FROM next_attempt_at - clock_timestamp()) AS due_in"
                f" FROM {self._table} ORDER BY id LIMIT $1 FOR UPDATE",
                batch,
            )
            applied: list[OutboxEntry] = []
            report = DrainReport()
            for row in rows:
                if row["due_in"] > 0:
                    report = DrainReport(wait=float(row["due_in"]))
                    break
                entry = OutboxEntry(
                    row["id"], row["op"], json.loads(row["payload"]), row["attempts"],
                    row["created_at"],
                )  # fmt: skip
                try:
                    await apply(entry)
                except MembankError as exc:
                    delay = self.backoff(entry.attempts + 1)
                    await conn.execute(
                        f"UPDATE {self._table} SET attempts = attempts + 1, last_error = $2,"
                        " next_attempt_at = clock_timestamp() + make_interval(secs => $3)"
                        " WHERE id = $1",
                        entry.id,
                        f"{type(exc).__name__}: {exc.message}"[:2000],
                        delay,
                    )
                    report = DrainReport(failed=entry, error=exc, wait=delay)
                    break
                applied.append(entry)
            if applied:
                await conn.execute(
                    f"DELETE FROM {self._table} WHERE id = ANY($1::bigint[])",
                    [e.id for e in applied],
                )
            return DrainReport(tuple(applied), report.failed, report.error, report.wait)

        report: DrainReport = await self._run("drain the outbox", op)
        return report


async def apply_entry(store: MemoryStore, entry: OutboxEntry) -> None:
    """Replay one queued write on ``store``."""
    if entry.op == UPSERT:
        await store.upsert(decode_records(entry.payload))
    elif entry.op == DELETE_USER:
        await store.delete_user(entry.payload["user_id"])
    elif entry.op == PURGE_EXPIRED:
        await store.purge_expired(datetime.fromisoformat(entry.payload["now"]))
    else:
        raise ConfigError(f"the outbox holds an operation this version lacks: {entry.op!r}")


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
