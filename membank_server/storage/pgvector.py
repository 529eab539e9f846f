"""PgVectorStore: memories in PostgreSQL with pgvector, through an asyncpg pool.

Tables (see :mod:`membank_server.storage._pg_schema`): ``<prefix>`` holds one row
per record, tombstones included, with its vector; ``<prefix>_history`` one row
per history event. HNSW ``m``/``ef_construction`` and the distance are fixed
when the index is made; ``start()`` refuses a table of another dimension or
distance.

Scores mirror the Qdrant stores: cosine ``1 - distance`` (the similarity), dot
the inner product; for euclid, where Qdrant reports the raw distance, the score
is ``1 / (1 + distance)`` so that higher is better and ``min_score`` still keeps
the nearest.

Search runs with ``hnsw.iterative_scan = relaxed_order`` (pgvector 0.8): when a
filter rejects most of the nearest rows the index scan goes on (up to
``hnsw.max_scan_tuples``) instead of returning short results; rows come nearly
ordered and are re-sorted here. Metadata filters follow Qdrant's rules, arrays
included: an integer equals only JSON integers (not 1.0, not true), a bool only
booleans, a float equality is a closed range, ranges compare numbers only.
Cursors are the next id, inclusive, like Qdrant's scroll offsets, so a cursor
one store gave can page another.

Upserts COPY into per-connection temporary tables and merge from there in one
transaction, committed with ``synchronous_commit=on`` before they return (those
tables and asyncpg's prepared statements need session pooling behind a
PgBouncer). jsonb keeps numbers as numerics: a float written as ``1e+16`` reads
back as an int.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

import stamina
from pgvector.asyncpg import register_vector

from membank_server.domain.errors import (
    ConfigError,
    Conflict,
    IntegrityError,
    InvalidInput,
    StorageUnavailable,
)
from membank_server.domain.integrity import Damage, IntegrityReport
from membank_server.domain.model import (
    CollectionInfo,
    HistoryEvent,
    Memory,
    MemoryRecord,
    Page,
    SearchFilter,
    SearchHit,
    Usage,
    VectorQuery,
)
from membank_server.storage._checked import sound
from membank_server.storage._pg_schema import (
    DRIVER_ERRORS,
    HISTORY_COLUMNS,
    LIVE,
    MEMORY_COLUMNS,
    MEMORY_SELECT,
    TEMP_HISTORY,
    TEMP_ROWS,
    Args,
    Connector,
    PgNames,
    apply_migrations,
    check_ident,
    check_memories,
    filters_sql,
    forget_component,
    history_from_rows,
    lock_schema,
    memories_migrations,
    memory_from_row,
    record_from_row,
    record_to_row,
    to_json,
    transient,
)

__all__ = ["InTransaction", "PgVectorStore"]

_T = TypeVar("_T")
#: Extra work run on a write's own connection, first in its transaction (so the locks
#: it takes, an outbox's per-user locks, order the whole write).
InTransaction = Callable[[Any], Awaitable[None]]

_DISTANCES: dict[str, tuple[str, str, Callable[[float], float]]] = {
    "cosine": ("vector_cosine_ops", "<=>", lambda d: 1.0 - d),
    "dot": ("vector_ip_ops", "<#>", lambda d: -d),  # <#> is the negative inner product
    "euclid": ("vector_l2_ops", "<->", lambda d: 1.0 / (1.0 + d)),
}


def _cursor(cursor: str) -> UUID:
    try:
        return UUID(cursor)
    except ValueError as exc:
        raise InvalidInput("the cursor is not one this server gave out") from exc


class PgVectorStore:
    """A :class:`~membank_server.domain.ports.MemoryStore` on PostgreSQL + pgvector.

    Args:
        dsn: ``postgresql://user:password@host:port/db``; the password never appears in errors.
        dimension: Vector size; must match an existing table.
        distance: ``cosine``, ``dot`` or ``euclid``.
        schema: Schema holding the tables (created when missing).
        table_prefix: Tables ``<prefix>`` and ``<prefix>_history``.
        pool_min: Connections kept open.
        pool_max: Most connections open at once.
        connect_timeout: Seconds to open a connection or wait for a pooled one.
        command_timeout: Client-side seconds per statement.
        statement_timeout_ms: Server-side limit per statement.
        hnsw_m: HNSW graph degree (when the index is made).
        hnsw_ef_construction: HNSW build-time beam (when the index is made).
        hnsw_ef_search: Search-time beam.
        migrate: Apply missing migrations in :meth:`start`; otherwise only check.
        retries: Attempts in all for a read whose connection broke.
        purge_batch: Rows erased per transaction by :meth:`purge_expired`.
        history_limit: Versions of history kept per memory (None: all).
    """

    backend = "pgvector"

    def __init__(
        self,
        dsn: str,
        *,
        dimension: int,
        distance: str = "cosine",
        schema: str = "membank",
        table_prefix: str = "memories",
        pool_min: int = 1,
        pool_max: int = 10,
        connect_timeout: float = 10.0,
        command_timeout: float = 30.0,
        statement_timeout_ms: int = 10_000,
        hnsw_m: int = 16,
        hnsw_ef_construction: int = 64,
        hnsw_ef_search: int = 100,
        migrate: bool = True,
        retries: int = 3,
        purge_batch: int = 5_000,
        history_limit: int | None = 100,
    ) -> None:
        if distance not in _DISTANCES:
            raise ConfigError(f"storage distance must be one of {sorted(_DISTANCES)}")
        if not 1 <= dimension <= 2000:
            raise ConfigError(f"pgvector HNSW indexes 1 to 2000 dimensions, not {dimension}")
        if not (2 <= hnsw_m <= 100 and 2 * hnsw_m <= hnsw_ef_construction <= 1000):
            raise ConfigError("pgvector needs 2 <= m <= 100 and 2 * m <= ef_construction <= 1000")
        if not 1 <= hnsw_ef_search <= 1000:
            raise ConfigError("pgvector hnsw_ef_search must be between 1 and 1000")
        if not 1 <= pool_min <= pool_max or retries < 1 or purge_batch < 1:
            raise ConfigError("pgvector needs 1 <= pool_min <= pool_max, retries, purge_batch")
        self.dsn, self.dimension, self.distance = dsn, dimension, distance
        self.names = PgNames(check_ident(schema, "schema"), check_ident(table_prefix, "prefix"))
        self.migrate_on_start = migrate
        self.hnsw = {"m": hnsw_m, "ef_construction": hnsw_ef_construction}
        self.ef_search = hnsw_ef_search
        self.connector = Connector(dsn, connect_timeout, command_timeout, statement_timeout_ms)
        self._pool_size = (pool_min, pool_max)
        self._retries = retries
        self._purge_batch = purge_batch
        self.history_limit = history_limit
        self._opclass, self._op, self._score = _DISTANCES[distance]
        self._component = f"memories:{self.names.prefix}"
        self._t, self._h = self.names.q(self.names.prefix), self.names.q(self.names.history)
        self._pool: Any = None

    # -- lifecycle ---------------------------------------------------------

    async def migrate(self) -> list[int]:
        """Create the extension, schema, tables and indexes that are missing.

        Returns:
            The migration versions applied now (empty when all were there).

        Raises:
            ConfigError: the login or database is refused, or the ``vector``
                extension is missing and this user may not create it.
            StorageUnavailable: PostgreSQL cannot be reached.
        """
        build = memories_migrations(self.names, self.dimension, self._opclass, **self.hnsw)
        async with self.connector.session("migrate the schema") as conn:
            return await apply_migrations(
                conn, self.names, self._component, build, needs_vector=True
            )

    async def start(self) -> None:
        """Apply (or, with ``migrate`` off, only check) the schema, then open the pool.

        Raises:
            ConfigError: the tables are missing (``migrate`` off) or were made for
                another dimension or distance.
            StorageUnavailable: PostgreSQL cannot be reached.
        """
        if self.migrate_on_start:
            await self.migrate()
        async with self.connector.session("check the schema") as conn:
            ext = await check_memories(
                conn, self.names, self._component, self.dimension, self._opclass,
                self.connector.where,
            )  # fmt: skip
        if self._pool is None:

            async def init(conn: Any) -> None:
                await register_vector(conn, schema=ext)
                # Once per connection: temp tables made per write would churn the catalog.
                await conn.execute(
                    f"CREATE TEMP TABLE {TEMP_ROWS} (LIKE {self._t}) ON COMMIT DELETE ROWS;"
                    f" CREATE TEMP TABLE {TEMP_HISTORY} (LIKE {self._h}) ON COMMIT DELETE ROWS"
                )

            # Search settings as connection defaults: a search is then one round trip
            # (they survive the pool's RESET ALL, being startup parameters).
            self._pool = await self.connector.pool(
                self._pool_size,
                ext,
                init,
                {"hnsw.ef_search": str(self.ef_search), "hnsw.iterative_scan": "relaxed_order"},
            )

    async def aclose(self) -> None:
        if self._pool is None:
            return
        pool, self._pool = self._pool, None
        try:
            await pool.close()
        except DRIVER_ERRORS as exc:
            raise self.connector.translate(exc, "close the pool") from exc

    async def optimize(self) -> bool:
        """Nothing to do: pgvector maintains the HNSW index on every write."""
        return False

    async def drop(self) -> None:
        """Drop this collection's tables (not the schema), then close the pool."""
        async with self.connector.session("drop the tables") as conn, conn.transaction():
            await lock_schema(conn)
            await conn.execute(f"DROP TABLE IF EXISTS {self._t}, {self._h}")
            await forget_component(conn, self.names, self._component)
        await self.aclose()

    # -- plumbing ----------------------------------------------------------

    def _require(self) -> Any:
        if self._pool is None:
            raise StorageUnavailable(f"the pgvector store ({self.connector.where}) is not open")
        return self._pool

    async def _read(self, what: str, op: Callable[[Any], Awaitable[_T]]) -> _T:
        """Run a read, again on a fresh connection when the link broke."""
        pool = self._require()
        try:
            async for attempt in stamina.retry_context(
                on=transient, attempts=self._retries, wait_initial=0.05, wait_max=1.0
            ):
                with attempt:
                    async with pool.acquire(timeout=self.connector.connect_timeout) as conn:
                        return await op(conn)
        except DRIVER_ERRORS as exc:
            raise self.connector.translate(exc, what) from exc
        raise AssertionError("unreachable: stamina makes at least one attempt")

    async def _write(self, what: str, op: Callable[[Any], Awaitable[_T]]) -> _T:
        """Run a write in one transaction, never retried: its commit may have happened."""
        pool = self._require()
        try:
            async with (
                pool.acquire(timeout=self.connector.connect_timeout) as conn,
                conn.transaction(),
            ):
                return await op(conn)
        except DRIVER_ERRORS as exc:
            raise self.connector.translate(exc, what) from exc

    # -- writes ------------------------------------------------------------

    async def upsert(
        self,
        records: Sequence[MemoryRecord],
        *,
        claims: Collection[UUID] = (),
        also: InTransaction | None = None,
    ) -> None:
        """Write records and add their history events in one transaction; ``also`` runs
        first in it (an outbox append). A row of another user is never overwritten:
        the merge is conditional on the stored ``user_id``, and a record it skipped
        fails the whole transaction with ``Conflict``."""
        if not records and also is None:
            return
        latest = {r.memory.id: r for r in records}  # the last copy of an id wins, as in Qdrant
        rows = [record_to_row(r) for r in latest.values()]
        history = [
            (r.memory.id, r.memory.user_id, h.version, h.event.value, h.content,
             to_json(dict(h.metadata)), h.at)
            for r in records
            for h in r.history
        ]  # fmt: skip
        t, h, cols, hcols = self._t, self._h, ", ".join(MEMORY_COLUMNS), HISTORY_COLUMNS[1:]
        prune = self.history_limit

        async def op(conn: Any) -> None:
            if also is not None:
                await also(conn)
            if not rows:
                return
            await conn.copy_records_to_table(TEMP_ROWS, records=rows, columns=MEMORY_COLUMNS)
            written = await conn.fetch(
                f"INSERT INTO {t} AS o ({cols}) SELECT {cols} FROM {TEMP_ROWS} ON CONFLICT (id)"
                f" DO UPDATE SET {', '.join(f'{c} = EXCLUDED.{c}' for c in MEMORY_COLUMNS[1:])}"
                " WHERE o.user_id = EXCLUDED.user_id RETURNING o.id"
            )
            if len(written) != len(rows):
                done = {UUID(bytes=r["id"].bytes) for r in written}
                taken = sorted(str(i) for i in latest if i not in done)
                raise Conflict("this id belongs to another memory", {"field": "id", "ids": taken})
            if not history:
                return
            await conn.copy_records_to_table(TEMP_HISTORY, records=history, columns=HISTORY_COLUMNS)
            await conn.execute(
                f"INSERT INTO {h} AS o SELECT * FROM {TEMP_HISTORY}"
                " ON CONFLICT (memory_id, version, event) DO UPDATE SET"
                f" {', '.join(f'{c} = EXCLUDED.{c}' for c in hcols)}"
            )
            if prune is not None:
                await conn.execute(
                    f"DELETE FROM {h} o USING {TEMP_ROWS} n"
                    " WHERE o.memory_id = n.id AND o.version <= n.version - $1",
                    prune,
                )

        await self._write("upsert memories", op)

    async def delete_user(self, user_id: str, *, also: InTransaction | None = None) -> int:
        async def op(conn: Any) -> int:
            if also is not None:
                await also(conn)
            live: int = await conn.fetchval(
                f"WITH gone AS (DELETE FROM {self._t} WHERE user_id = $1"
                " RETURNING state, expires_at),"
                f" h AS (DELETE FROM {self._h} WHERE user_id = $1)"
                f" SELECT count(*) FROM gone m WHERE {LIVE}",
                user_id,
                datetime.now(UTC),
            )
            return live

        return await self._write("delete a user", op)

    async def purge_expired(self, now: datetime, *, also: InTransaction | None = None) -> int:
        """Erase expired records in batches; ``also`` joins the first batch that erases."""
        sql = (
            f"WITH gone AS (DELETE FROM {self._t} WHERE id IN (SELECT id FROM {self._t}"
            " WHERE expires_at <= $1 LIMIT $2) RETURNING id),"
            f" h AS (DELETE FROM {self._h} WHERE memory_id IN (SELECT id FROM gone))"
            " SELECT count(*) FROM gone"
        )
        total = 0
        while True:

            async def op(conn: Any, first: bool = total == 0) -> int:
                n: int = await conn.fetchval(sql, now, self._purge_batch)
                if n and first and also is not None:
                    await also(conn)
                return n

            n = await self._write("purge expired memories", op)
            total += n
            if n < self._purge_batch:
                return total

    # -- reads -------------------------------------------------------------

    def _records_sql(self, where: str, tail: str = "", *, history: bool = False) -> str:
        """Whole records (vector included, history only when asked) of the rows ``where``
        selects."""
        events = (
            ", (SELECT array_agg((h.event, h.version, h.content, h.metadata, h.at)"
            f" ORDER BY h.version, h.at) FROM {self._h} h"
            " WHERE h.memory_id = m.id AND h.version <= m.version) AS history"
            if history
            else ""
        )
        return (
            f"SELECT {MEMORY_SELECT}, m.deleted_at, m.idempotency, m.embedding{events}"
            f" FROM {self._t} m WHERE {where}{tail}"
        )

    async def get(self, user_id: str, memory_ids: Sequence[UUID]) -> dict[UUID, MemoryRecord]:
        if not memory_ids:
            return {}
        sql = self._records_sql("m.user_id = $1 AND m.id = ANY($2::uuid[])")
        rows = await self._read("get memories", lambda c: c.fetch(sql, user_id, list(memory_ids)))
        return {r.memory.id: r for r in (record_from_row(row, self.dimension) for row in rows)}

    async def history(
        self, user_id: str, memory_id: UUID, *, all_versions: bool = False
    ) -> tuple[HistoryEvent, ...]:
        # Up to the record's version: an event newer than its record never shows.
        bound = (
            ""
            if all_versions
            else f" JOIN {self._t} m ON m.id = h.memory_id AND h.version <= m.version"
        )
        sql = (
            f"SELECT h.event, h.version, h.content, h.metadata, h.at FROM {self._h} h{bound}"
            " WHERE h.memory_id = $1 AND h.user_id = $2 ORDER BY h.version, h.at"
        )
        rows = await self._read("read history", lambda c: c.fetch(sql, memory_id, user_id))
        return history_from_rows(tuple(r) for r in rows)

    async def verify(self, progress: Callable[[int], None] | None = None) -> IntegrityReport:
        """Check every row (content against its hash, vector shape) and list the
        memories whose history outlived their row."""
        report = IntegrityReport()
        cursor: UUID | None = None
        sql = self._records_sql("($1::uuid IS NULL OR m.id > $1)", " ORDER BY m.id LIMIT 1000")
        while True:

            async def page(conn: Any, at: UUID | None = cursor) -> list[Any]:
                found: list[Any] = await conn.fetch(sql, at)
                return found

            rows = await self._read("verify", page)
            for row in rows:
                report.checked += 1
                try:
                    record_from_row(row, self.dimension)
                except IntegrityError as exc:
                    memory_id = str(UUID(bytes=row["id"].bytes))
                    problem = str(exc.details.get("problem"))
                    report.damaged.append(Damage(memory_id, problem, row["user_id"]))
            if progress is not None:
                progress(len(rows))
            if len(rows) < 1000:
                break
            cursor = UUID(bytes=rows[-1]["id"].bytes)
        orphans = await self._read(
            "find orphaned history",
            lambda c: c.fetch(
                f"SELECT DISTINCT h.memory_id, h.user_id FROM {self._h} h"
                f" WHERE NOT EXISTS (SELECT 1 FROM {self._t} m WHERE m.id = h.memory_id)"
            ),
        )
        for row in orphans:
            problem = "record is missing; its history is kept"
            report.damaged.append(Damage(str(row["memory_id"]), problem, row["user_id"]))
        return report

    async def discard(self, memory_ids: Sequence[UUID]) -> None:
        """Remove rows and their history by id, whatever state they are in (repair)."""
        ids = list(memory_ids)

        async def op(conn: Any) -> None:
            await conn.execute(f"DELETE FROM {self._h} WHERE memory_id = ANY($1::uuid[])", ids)
            await conn.execute(f"DELETE FROM {self._t} WHERE id = ANY($1::uuid[])", ids)

        if ids:
            await self._write("discard memories", op)

    async def usage(self, user_id: str) -> Usage:
        sql = (
            "SELECT count(*) AS n, coalesce(sum(octet_length(m.content)"
            " + octet_length(m.metadata::text)), 0) AS bytes"
            f" FROM {self._t} m WHERE m.user_id = $1 AND {LIVE}"
        )
        now = datetime.now(UTC)
        row = await self._read("measure a user", lambda c: c.fetchrow(sql, user_id, now))
        return Usage(int(row["n"]), int(row["bytes"]))

    async def scan(
        self, cursor: str | None = None, limit: int = 500
    ) -> tuple[list[MemoryRecord], str | None]:
        """Every record in id order; the cursor is the next id, inclusive, as in ``list_page``."""
        start = _cursor(cursor) if cursor is not None else None
        sql = self._records_sql(
            "($1::uuid IS NULL OR m.id >= $1)", " ORDER BY m.id LIMIT $2", history=True
        )
        rows = await self._read("scan memories", lambda c: c.fetch(sql, start, max(limit, 0) + 1))
        # A damaged record is left out of copies and backups (logged; `verify` lists it).
        records = sound(rows[:limit], lambda r: record_from_row(r, self.dimension))
        if len(rows) > limit:
            return records, str(UUID(bytes=rows[limit]["id"].bytes))
        return records, None

    async def owners(self, memory_ids: Sequence[UUID]) -> dict[UUID, str]:
        if not memory_ids:
            return {}
        sql = f"SELECT id, user_id FROM {self._t} WHERE id = ANY($1::uuid[])"
        rows = await self._read("look up owners", lambda c: c.fetch(sql, list(memory_ids)))
        return {UUID(bytes=r["id"].bytes): r["user_id"] for r in rows}

    async def find_by_hash(
        self, pairs: Sequence[tuple[str, str]], now: datetime
    ) -> dict[tuple[str, str], Memory]:
        wanted = sorted(set(pairs))
        if not wanted:
            return {}
        # The lowest id of a duplicated pair wins, as in Qdrant's id-ordered scroll.
        sql = (
            f"SELECT DISTINCT ON (m.user_id, m.content_hash) {MEMORY_SELECT} FROM {self._t} m"
            " JOIN unnest($1::text[], $3::text[]) AS p(user_id, content_hash)"
            " ON m.user_id = p.user_id AND m.content_hash = p.content_hash"
            f" WHERE {LIVE} ORDER BY m.user_id, m.content_hash, m.id"
        )
        users, hashes = [u for u, _ in wanted], [h for _, h in wanted]
        rows = await self._read("find by hash", lambda c: c.fetch(sql, users, now, hashes))
        return {(m.user_id, m.content_hash): m for m in sound(rows, memory_from_row)}

    async def list_page(
        self,
        user_id: str,
        *,
        now: datetime,
        limit: int,
        cursor: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
    ) -> Page:
        args = Args(user_id, now)
        where = [f"m.user_id = $1 AND {LIVE}"]
        if cursor is not None:
            where.append(f"m.id >= {args.add(_cursor(cursor))}")
        where.extend(filters_sql(SearchFilter(agent_id=agent_id, session_id=session_id), args))
        sql = (
            f"SELECT {MEMORY_SELECT} FROM {self._t} m WHERE {' AND '.join(where)}"
            f" ORDER BY m.id LIMIT {args.add(max(limit, 0) + 1)}"
        )
        rows = await self._read("list memories", lambda c: c.fetch(sql, *args.values))
        items = sound(rows[:limit], memory_from_row)
        if len(rows) > limit:
            return Page(tuple(items), str(UUID(bytes=rows[limit]["id"].bytes)))
        return Page(tuple(items), None)

    async def search(self, query: VectorQuery) -> list[SearchHit]:
        args = Args(query.user_id, query.now, list(query.vector))
        where = [f"m.user_id = $1 AND {LIVE} AND m.embedding IS NOT NULL"]
        where.extend(filters_sql(query.filters, args))
        sql = (
            f"SELECT {MEMORY_SELECT}, m.embedding {self._op} $3 AS distance FROM {self._t} m"
            f" WHERE {' AND '.join(where)} ORDER BY m.embedding {self._op} $3"
            f" LIMIT {args.add(query.limit)}"
        )

        async def op(conn: Any) -> list[Any]:
            rows: list[Any] = await conn.fetch(sql, *args.values)
            return rows

        rows = await self._read("search", op)
        # relaxed_order returns rows nearly sorted; put them in exact order.
        hits = sorted(
            sound(rows, lambda r: SearchHit(memory_from_row(r), self._score(float(r["distance"])))),
            key=lambda h: h.score,
            reverse=True,
        )
        if query.min_score is not None:
            hits = [h for h in hits if h.score >= query.min_score]
        return hits

    async def count(self, user_id: str | None = None) -> int:
        # $1 IS NULL keeps one statement for both cases, with $2 the clock as LIVE needs.
        sql = (
            f"SELECT count(*) FROM {self._t} m"
            f" WHERE {LIVE} AND ($1::text IS NULL OR m.user_id = $1)"
        )
        now = datetime.now(UTC)
        counted: int = await self._read("count memories", lambda c: c.fetchval(sql, user_id, now))
        return counted

    async def info(self) -> CollectionInfo:
        sql = (
            "SELECT count(*) AS points, count(embedding) AS indexed,"
            " (SELECT reloptions FROM pg_class WHERE oid = to_regclass($1)) AS options,"
            f" current_setting('server_version') AS version FROM {self._t}"
        )
        index = self.names.q(self.names.hnsw_index)
        counts = await self._read("describe the collection", lambda c: c.fetchrow(sql, index))
        built = {k: int(v) for k, v in (o.split("=", 1) for o in counts["options"] or ())}
        return CollectionInfo(
            backend=self.backend,
            name=f"{self.names.schema}.{self.names.prefix}",
            dimension=self.dimension,
            distance=self.distance,
            points=int(counts["points"]),
            indexed_vectors=int(counts["indexed"]),
            segments=1,
            extra={
                "schema": self.names.schema,
                "table": self.names.prefix,
                "history_table": self.names.history,
                "hnsw_index": self.names.hnsw_index,
                "hnsw": {**self.hnsw, **built, "ef_search": self.ef_search},
                "iterative_scan": "relaxed_order",
                "server_version": counts["version"],
                "database": self.connector.where,
            },
        )
