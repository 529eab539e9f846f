"""PgOutbox: the outbox table ``<schema>.<prefix>_outbox`` and the one pool that works on it.

One row per queued write (:mod:`._outbox_entries`), deleted only after the
secondary applied it. :meth:`PgOutbox.drain` applies the oldest rows first, one
drainer at a time across processes (a transaction-level advisory lock), and
stops at the first failure: that row gets ``attempts + 1``, its ``last_error``
and a ``next_attempt_at`` with capped exponential backoff and jitter, and the
rows behind it wait. :meth:`PgOutbox.enqueue_on` appends inside a caller's
transaction after taking a transaction-level advisory lock per user.
"""

from __future__ import annotations

import json
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from membank_server.domain.errors import MembankError
from membank_server.pg import (
    Database,
    Migration,
    PoolSettings,
    apply_migrations,
    check_ident,
    drop_component,
)
from membank_server.storage._outbox_entries import DrainReport, Entry, OutboxEntry, users_of
from membank_server.storage._pg_memories import SETUP, PgNames
from membank_server.storage._pg_rows import to_json

__all__ = ["PgOutbox"]

_POOL = PoolSettings(max_size=4)


class PgOutbox:
    """The outbox table ``<schema>.<prefix>_outbox`` and the one pool that works on it.

    Args:
        dsn: libpq URL; give the primary's DSN to enqueue in its transactions.
        schema: Schema holding the table (created when missing).
        table_prefix: The table is ``<prefix>_outbox``.
        pool: Pool sizes and timeouts (by default at most 4 connections).
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
        pool: PoolSettings = _POOL,
        migrate: bool = True,
        retry_base: float = 0.5,
        retry_cap: float = 60.0,
    ) -> None:
        self.dsn = dsn
        self.names = PgNames(check_ident(schema, "schema"), check_ident(table_prefix, "prefix"))
        self.db = Database(dsn, pool, label="the outbox", missing_table=SETUP)
        self.migrate_on_start = migrate
        self.retry_base, self.retry_cap = retry_base, retry_cap
        self._component = f"outbox:{self.names.prefix}"
        self._table = self.names.q(self.names.outbox)

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
        async with self.db.session("migrate the outbox") as conn:
            return await apply_migrations(
                conn, self.names.schema, self._component, self._migrations
            )

    async def start(self) -> None:
        if self.migrate_on_start:
            await self.migrate()
        await self.db.open()

    async def aclose(self) -> None:
        await self.db.close()

    async def drop(self) -> None:
        """Drop the outbox table and whatever it still holds, then close the pool."""
        async with self.db.session("drop the outbox") as conn:
            await drop_component(conn, self.names.schema, self._component, (self._table,))
        await self.aclose()

    def backoff(self, attempts: int) -> float:
        """Seconds before retry number ``attempts``: doubling, capped, with jitter."""
        delay = min(self.retry_cap, self.retry_base * 2.0 ** max(attempts - 1, 0))
        return delay * random.uniform(0.5, 1.0)

    # -- queue -------------------------------------------------------------

    async def enqueue_on(self, conn: Any, entries: Sequence[Entry]) -> None:
        """Append entries on a connection inside the caller's open transaction.

        Run it first in that transaction: the per-user locks it takes then order
        the whole write against other processes' writes for the same users.
        """
        users = users_of(entries)
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
        await self.db.run(
            "queue writes for the secondary store", lambda c: self.enqueue_on(c, entries)
        )

    async def size(self) -> int:
        sql = f"SELECT count(*) FROM {self._table}"
        n: int = await self.db.run("count the outbox", lambda c: c.fetchval(sql))
        return n

    async def pending(self) -> bool:
        sql = f"SELECT EXISTS (SELECT 1 FROM {self._table} ORDER BY id LIMIT 1)"
        found: bool = await self.db.run("look at the outbox", lambda c: c.fetchval(sql))
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

        report: DrainReport = await self.db.run("drain the outbox", op)
        return report
