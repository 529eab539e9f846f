"""PgJobQueue: the job queue in PostgreSQL, shared by every instance on the database.

Tables ``<schema>.<prefix>_jobs``, ``<prefix>_job_items`` and ``<prefix>_job_counters``,
made by the migrations of the component ``jobs:<prefix>`` (see :mod:`membank_server.pg`).
A claim takes pending items with ``FOR UPDATE SKIP LOCKED``, so instances claiming
at once never take the same item, and leases them until ``now() + lease``; an
expired lease (its instance died) is pending again at the next claim. Times are the
database's clock, the same for every instance.

Back-pressure counts (waiting items in all, per kind, per user) are rows of the
counters table, changed in the same transactions as the items; a submit locks the
rows it checks, so two instances cannot both pass a limit only one of them fits.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from membank_server.domain.jobs import (
    Claimed,
    DeadItem,
    ItemOutcome,
    ItemResult,
    ItemState,
    Job,
    JobItem,
    JobKind,
    QueueLimits,
)
from membank_server.pg import (
    Database,
    Migration,
    PoolSettings,
    apply_migrations,
    check_ident,
    drop_component,
    qualify,
)
from membank_server.queue._limits import check_limits

__all__ = ["PgJobQueue"]

_JOB = "id, kind, user_ids, created_at, updated_at, total, done, dead"


def _job(r: Any) -> Job:
    return Job(
        r["id"], JobKind(r["kind"]), tuple(r["user_ids"]), r["created_at"], r["updated_at"],
        r["total"], r["done"], r["dead"],
    )  # fmt: skip


class PgJobQueue:
    """The :class:`~membank_server.domain.jobs.JobQueue` port in PostgreSQL (module docs).

    Args:
        dsn: libpq URL; never shown in a message.
        schema: Schema of the tables (made when missing).
        table_prefix: The tables are ``<prefix>_jobs``, ``<prefix>_job_items``, ...
        pool: Pool sizes and timeouts.
        migrate: Create the tables in :meth:`start` when missing.
    """

    backend = "postgres"

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "membank",
        table_prefix: str = "memories",
        pool: PoolSettings | None = None,
        migrate: bool = True,
    ) -> None:
        self.schema = check_ident(schema, "storage.postgres.schema")
        prefix = check_ident(table_prefix, "storage.postgres.table_prefix")
        self._component = f"jobs:{prefix}"
        self._jobs = qualify(self.schema, f"{prefix}_jobs")
        self._items_table = f"{prefix}_job_items"
        self._items = qualify(self.schema, self._items_table)
        self._counters = qualify(self.schema, f"{prefix}_job_counters")
        self.db = Database(
            dsn, pool or PoolSettings(max_size=4), label="the job queue",
            missing_table="start membank with storage.postgres.migrate_on_start",
        )  # fmt: skip
        self._migrate = migrate

    # -- lifecycle ---------------------------------------------------------------

    def _migrations(self, _ext: str | None) -> list[Migration]:
        j, i, c = self._jobs, self._items, self._counters
        return [
            Migration(
                1,
                (
                    f"CREATE TABLE {j} (id uuid PRIMARY KEY, kind text NOT NULL,"
                    " user_ids text[] NOT NULL, created_at timestamptz NOT NULL,"
                    " updated_at timestamptz NOT NULL, total int NOT NULL,"
                    " done int NOT NULL DEFAULT 0, dead int NOT NULL DEFAULT 0,"
                    " finished_at timestamptz)",
                    f"CREATE INDEX ON {j} USING gin (user_ids)",
                    f"CREATE INDEX ON {j} (finished_at) WHERE finished_at IS NOT NULL",
                    f"CREATE TABLE {i} (seq bigserial PRIMARY KEY,"
                    f" job_id uuid NOT NULL REFERENCES {j} (id) ON DELETE CASCADE,"
                    " idx int NOT NULL, kind text NOT NULL, user_id text NOT NULL, payload bytea,"
                    " state text NOT NULL, attempts int NOT NULL DEFAULT 0,"
                    " available_at timestamptz NOT NULL, lease_until timestamptz,"
                    " enqueued_at timestamptz NOT NULL, memory_id uuid, detail bytea,"
                    " error_code text, error text, finished_at timestamptz, UNIQUE (job_id, idx))",
                    f"CREATE INDEX ON {i} (kind, available_at, seq) WHERE state = 'pending'",
                    f"CREATE INDEX ON {i} (kind, lease_until) WHERE state = 'leased'",
                    f"CREATE INDEX ON {i} (finished_at) WHERE state = 'dead'",
                    f"CREATE TABLE {c} (name text PRIMARY KEY, n bigint NOT NULL)",
                ),
            )
        ]

    async def start(self) -> None:
        if self._migrate:
            async with self.db.session("create the job queue's tables") as conn:
                await apply_migrations(conn, self.schema, self._component, self._migrations)
        await self.db.open()

    async def aclose(self) -> None:
        await self.db.close()

    async def drop(self) -> None:
        """Drop the queue's tables (tests, ``collection drop``)."""
        async with self.db.session("drop the job queue") as conn:
            tables = (self._counters, self._items, self._jobs)
            await drop_component(conn, self.schema, self._component, tables)
        await self.aclose()

    # -- writes ------------------------------------------------------------------

    async def submit(self, job: Job, items: Sequence[JobItem], limits: QueueLimits) -> None:
        per_user = Counter(item.user_id for item in items)

        async def op(conn: Any) -> None:
            names = ["*", *(f"user:{u}" for u in sorted(per_user))]
            await conn.execute(
                f"INSERT INTO {self._counters} SELECT unnest($1::text[]), 0 ON CONFLICT DO NOTHING",
                names,
            )
            rows = await conn.fetch(
                f"SELECT name, n FROM {self._counters} WHERE name = ANY($1) ORDER BY name"
                " FOR UPDATE",
                names,
            )
            have = {r["name"]: r["n"] for r in rows}
            check_limits(have, len(items), per_user, limits)
            await conn.execute(
                f"INSERT INTO {self._jobs} ({_JOB}) VALUES ($1, $2, $3, $4, $4, $5, 0, 0)",
                job.id, job.kind.value, list(job.user_ids), job.created_at, job.total,
            )  # fmt: skip
            await conn.copy_records_to_table(
                self._items_table,
                schema_name=self.schema,
                columns=["job_id", "idx", "kind", "user_id", "payload", "state",
                         "available_at", "enqueued_at"],
                records=[
                    (job.id, i, job.kind.value, it.user_id, it.payload, "pending",
                     job.created_at, job.created_at)
                    for i, it in enumerate(items)
                ],
            )  # fmt: skip
            deltas = {"*": len(items), f"kind:{job.kind.value}": len(items)}
            deltas.update({f"user:{u}": n for u, n in per_user.items()})
            await self._add(conn, deltas)

        await self.db.run("queue a job", op)

    async def _add(self, conn: Any, deltas: dict[str, int]) -> None:
        pairs = [(k, v) for k, v in sorted(deltas.items()) if v]
        if not pairs:
            return
        await conn.execute(
            f"INSERT INTO {self._counters} AS c SELECT * FROM unnest($1::text[], $2::bigint[])"
            " ON CONFLICT (name) DO UPDATE SET n = c.n + excluded.n",
            [k for k, _ in pairs],
            [v for _, v in pairs],
        )

    async def claim(self, kind: JobKind, limit: int, lease_seconds: float) -> list[Claimed]:
        async def op(conn: Any) -> list[Claimed]:
            # Leases that ran out (their instance died): pending again.
            await conn.execute(
                f"UPDATE {self._items} SET state = 'pending', lease_until = NULL"
                " WHERE kind = $1 AND state = 'leased' AND lease_until < now()",
                kind.value,
            )
            rows = await conn.fetch(
                f"WITH picked AS (SELECT seq FROM {self._items} WHERE kind = $1"
                " AND state = 'pending' AND available_at <= now() ORDER BY available_at, seq"
                " LIMIT $2 FOR UPDATE SKIP LOCKED)"
                f" UPDATE {self._items} i SET state = 'leased', attempts = i.attempts + 1,"
                " lease_until = now() + make_interval(secs => $3) FROM picked"
                " WHERE i.seq = picked.seq"
                " RETURNING i.job_id, i.idx, i.user_id, i.payload, i.attempts, i.enqueued_at",
                kind.value, limit, lease_seconds,
            )  # fmt: skip
            return [
                Claimed(r["job_id"], r["idx"], kind, r["user_id"], r["payload"], r["attempts"],
                        r["enqueued_at"])
                for r in rows
            ]  # fmt: skip

        return await self.db.run("claim queued items", op)

    async def finish(self, outcomes: Sequence[ItemOutcome]) -> None:
        if not outcomes:
            return
        cols: list[list[Any]] = [[] for _ in range(9)]
        for o in outcomes:
            values = (o.job_id, o.index, o.state.value, o.memory_id, o.detail, o.error_code,
                      o.error, o.delay, 0 if o.counts else 1)  # fmt: skip
            for col, value in zip(cols, values, strict=True):
                col.append(value)

        async def op(conn: Any) -> None:
            rows = await conn.fetch(
                f"UPDATE {self._items} i SET state = o.state, lease_until = NULL,"
                " memory_id = o.memory_id, detail = o.detail, error_code = o.code,"
                " error = o.error, attempts = i.attempts - o.give_back,"
                " available_at = now() + make_interval(secs => o.delay),"
                " finished_at = CASE WHEN o.state = 'pending' THEN NULL ELSE now() END,"
                " payload = CASE WHEN o.state = 'done' THEN NULL ELSE i.payload END"
                " FROM unnest($1::uuid[], $2::int[], $3::text[], $4::uuid[], $5::bytea[],"
                " $6::text[], $7::text[], $8::float8[], $9::int[])"
                " AS o(job_id, idx, state, memory_id, detail, code, error, delay, give_back)"
                " WHERE i.job_id = o.job_id AND i.idx = o.idx AND i.state = 'leased'"
                " RETURNING i.job_id, i.kind, i.user_id, o.state",
                *cols,
            )
            jobs: dict[UUID, list[int]] = {}
            gone: Counter[str] = Counter()
            for r in rows:
                if r["state"] == "pending":
                    continue
                counts = jobs.setdefault(r["job_id"], [0, 0])
                counts[0 if r["state"] == "done" else 1] += 1
                gone.update(("*", f"kind:{r['kind']}", f"user:{r['user_id']}"))
            for job_id, (done, dead) in sorted(jobs.items()):
                await conn.execute(
                    f"UPDATE {self._jobs} SET done = done + $2, dead = dead + $3,"
                    " updated_at = now(), finished_at = CASE WHEN done + dead + $2 + $3 >= total"
                    " THEN now() END WHERE id = $1",
                    job_id, done, dead,
                )  # fmt: skip
            await self._add(conn, {k: -n for k, n in gone.items()})

        await self.db.run("record processed items", op)

    async def retry(self, job_id: UUID, index: int | None = None) -> int:
        async def op(conn: Any) -> int:
            rows = await conn.fetch(
                f"UPDATE {self._items} SET state = 'pending', attempts = 0,"
                " available_at = now(), finished_at = NULL, error_code = NULL, error = NULL"
                " WHERE job_id = $1 AND state = 'dead' AND ($2::int IS NULL OR idx = $2)"
                " RETURNING kind, user_id",
                job_id, index,
            )  # fmt: skip
            if rows:
                await conn.execute(
                    f"UPDATE {self._jobs} SET dead = dead - $2, updated_at = now(),"
                    " finished_at = NULL WHERE id = $1",
                    job_id, len(rows),
                )  # fmt: skip
                back: Counter[str] = Counter()
                for r in rows:
                    back.update(("*", f"kind:{r['kind']}", f"user:{r['user_id']}"))
                await self._add(conn, dict(back))
            return len(rows)

        return await self.db.run("retry dead items", op)

    async def purge(
        self, job_id: UUID | None = None, *, finished_before: datetime | None = None
    ) -> int:
        async def op(conn: Any) -> int:
            args: list[object] = []
            if job_id is not None:
                where, args = "id = $1 AND finished_at IS NOT NULL", [job_id]
            elif finished_before is not None:
                where, args = "finished_at < $1", [finished_before]
            else:
                where = "finished_at IS NOT NULL"
            rows = await conn.fetch(f"DELETE FROM {self._jobs} WHERE {where} RETURNING id", *args)
            return len(rows)

        return await self.db.run("purge finished jobs", op)

    # -- reads -------------------------------------------------------------------

    async def job(self, job_id: UUID) -> Job | None:
        async def op(conn: Any) -> Job | None:
            row = await conn.fetchrow(f"SELECT {_JOB} FROM {self._jobs} WHERE id = $1", job_id)
            return _job(row) if row else None

        return await self.db.run("read a job", op, transaction=False, attempts=3)

    async def items(self, job_id: UUID, offset: int, limit: int) -> list[ItemResult]:
        async def op(conn: Any) -> list[ItemResult]:
            rows = await conn.fetch(
                "SELECT idx, user_id, state, attempts, memory_id, detail, error_code, error"
                f" FROM {self._items} WHERE job_id = $1 AND idx >= $2 ORDER BY idx LIMIT $3",
                job_id, offset, limit,
            )  # fmt: skip
            return [
                ItemResult(r["idx"], r["user_id"], ItemState(r["state"]), r["attempts"],
                           r["memory_id"], r["detail"], r["error_code"], r["error"])
                for r in rows
            ]  # fmt: skip

        return await self.db.run("read a job's items", op, transaction=False, attempts=3)

    async def jobs(self, user_id: str, limit: int, before: datetime | None = None) -> list[Job]:
        async def op(conn: Any) -> list[Job]:
            rows = await conn.fetch(
                f"SELECT {_JOB} FROM {self._jobs} WHERE user_ids @> ARRAY[$1]"
                " AND ($2::timestamptz IS NULL OR created_at < $2)"
                " ORDER BY created_at DESC LIMIT $3",
                user_id, before, limit,
            )  # fmt: skip
            return [_job(r) for r in rows]

        return await self.db.run("list jobs", op, transaction=False, attempts=3)

    async def dead(self, user_id: str | None, limit: int) -> list[DeadItem]:
        async def op(conn: Any) -> list[DeadItem]:
            rows = await conn.fetch(
                "SELECT job_id, idx, kind, user_id, attempts, error_code, error, finished_at"
                f" FROM {self._items} WHERE state = 'dead'"
                " AND ($1::text IS NULL OR user_id = $1) ORDER BY finished_at DESC LIMIT $2",
                user_id, limit,
            )  # fmt: skip
            return [
                DeadItem(r["job_id"], r["idx"], JobKind(r["kind"]), r["user_id"], r["attempts"],
                         r["error_code"] or "error", r["error"] or "", r["finished_at"])
                for r in rows
            ]  # fmt: skip

        return await self.db.run("list dead items", op, transaction=False, attempts=3)

    async def depth(self) -> dict[JobKind, int]:
        async def op(conn: Any) -> dict[JobKind, int]:
            rows = await conn.fetch(
                f"SELECT name, n FROM {self._counters} WHERE name LIKE 'kind:%'"
            )
            found = {r["name"].removeprefix("kind:"): int(r["n"]) for r in rows}
            return {k: found.get(k.value, 0) for k in JobKind}

        return await self.db.run("measure the queue", op, transaction=False, attempts=3)
