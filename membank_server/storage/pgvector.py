"""PgVectorStore: memories in PostgreSQL with pgvector, through an asyncpg pool.

The store is put together from the pieces beside it: its tables and migrations
(:mod:`._pg_memories`: ``<prefix>`` with a row per record, tombstones included,
and ``<prefix>_history`` with a row per event), rows and records
(:mod:`._pg_rows`), filters as SQL (:mod:`._pg_filters`) and the reads
(:mod:`._pg_reads`); connections, errors and migrations are
:mod:`membank_server.pg`'s. HNSW ``m``/``ef_construction`` and the distance are
fixed when the index is made; ``start()`` refuses a table of another dimension
or distance.

Scores mirror the Qdrant stores: cosine ``1 - distance`` (the similarity), dot
the inner product; for euclid, where Qdrant reports the raw distance, the score
is ``1 / (1 + distance)`` so that higher is better and ``min_score`` still keeps
the nearest.

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

from pgvector.asyncpg import register_vector

from membank_server.domain.errors import ConfigError, Conflict
from membank_server.domain.model import CollectionInfo, MemoryRecord
from membank_server.lexical import LexicalIndex
from membank_server.pg import (
    Database,
    InTransaction,
    PoolSettings,
    apply_migrations,
    check_ident,
    drop_component,
)
from membank_server.storage._pg_lexical import backfill, tsvector_text
from membank_server.storage._pg_memories import (
    DISTANCES,
    SETUP,
    PgNames,
    check_memories,
    memories_migrations,
)
from membank_server.storage._pg_reads import PgMemoryReads
from membank_server.storage._pg_rows import (
    HISTORY_COLUMNS,
    LIVE,
    MEMORY_COLUMNS,
    TEMP_HISTORY,
    TEMP_ROWS,
    record_to_row,
    to_json,
)

__all__ = ["InTransaction", "PgVectorStore"]

_T = TypeVar("_T")

_POOL = PoolSettings()


class PgVectorStore(PgMemoryReads):
    """A :class:`~membank_server.domain.ports.MemoryStore` on PostgreSQL + pgvector.

    The reads are :class:`~membank_server.storage._pg_reads.PgMemoryReads`; this
    class adds the schema, the pool's life and the writes.

    Args:
        dsn: ``postgresql://user:password@host:port/db``; the password never appears in errors.
        dimension: Vector size; must match an existing table.
        distance: ``cosine``, ``dot`` or ``euclid``.
        schema: Schema holding the tables (created when missing).
        table_prefix: Tables ``<prefix>`` and ``<prefix>_history``.
        pool: Pool sizes and timeouts (``storage.postgres``).
        hnsw_m: HNSW graph degree (when the index is made).
        hnsw_ef_construction: HNSW build-time beam (when the index is made).
        hnsw_ef_search: Search-time beam.
        migrate: Apply missing migrations in :meth:`start`; otherwise only check.
        retries: Attempts in all for a read whose connection broke.
        purge_batch: Rows erased per transaction by :meth:`purge_expired`.
        history_limit: Versions of history kept per memory (None: all).
        lexical: How records are indexed for lexical search (``_pg_lexical``).
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
        pool: PoolSettings = _POOL,
        hnsw_m: int = 16,
        hnsw_ef_construction: int = 64,
        hnsw_ef_search: int = 100,
        migrate: bool = True,
        retries: int = 3,
        purge_batch: int = 5_000,
        history_limit: int | None = 100,
        lexical: LexicalIndex | None = None,
    ) -> None:
        if distance not in DISTANCES:
            raise ConfigError(f"storage distance must be one of {sorted(DISTANCES)}")
        if not 1 <= dimension <= 2000:
            raise ConfigError(f"pgvector HNSW indexes 1 to 2000 dimensions, not {dimension}")
        if not (2 <= hnsw_m <= 100 and 2 * hnsw_m <= hnsw_ef_construction <= 1000):
            raise ConfigError("pgvector needs 2 <= m <= 100 and 2 * m <= ef_construction <= 1000")
        if not 1 <= hnsw_ef_search <= 1000:
            raise ConfigError("pgvector hnsw_ef_search must be between 1 and 1000")
        if retries < 1 or purge_batch < 1:
            raise ConfigError("pgvector needs retries and purge_batch of at least 1")
        names = PgNames(check_ident(schema, "schema"), check_ident(table_prefix, "prefix"))
        db = Database(dsn, pool, label="the pgvector store", missing_table=SETUP)
        super().__init__(db, names, dimension, distance, retries)
        self.lexical = lexical or LexicalIndex()
        self.dsn, self.distance = dsn, distance
        self.migrate_on_start = migrate
        self.hnsw = {"m": hnsw_m, "ef_construction": hnsw_ef_construction}
        self.ef_search = hnsw_ef_search
        self._purge_batch = purge_batch
        self.history_limit = history_limit
        self._opclass = DISTANCES[distance][0]
        self._component = f"memories:{names.prefix}"

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
        async with self.db.session("migrate the schema") as conn:
            return await apply_migrations(
                conn, self.names.schema, self._component, build, needs_vector=True
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
            async with self.db.session("index earlier rows for lexical search") as conn:
                await backfill(conn, self._t, self.lexical)
        async with self.db.session("check the schema") as conn:
            ext = await check_memories(
                conn, self.names, self._component, self.dimension, self._opclass, self.db.where
            )

        async def init(conn: Any) -> None:
            await register_vector(conn, schema=ext)
            # Once per connection: temp tables made per write would churn the catalog.
            await conn.execute(
                f"CREATE TEMP TABLE {TEMP_ROWS} (LIKE {self._t}) ON COMMIT DELETE ROWS;"
                # COPY has no binary tsvector: the terms go in as text, cast on merge.
                f" ALTER TABLE {TEMP_ROWS} ALTER COLUMN lexemes TYPE text;"
                f" CREATE TEMP TABLE {TEMP_HISTORY} (LIKE {self._h}) ON COMMIT DELETE ROWS"
            )

        # Search settings as connection defaults: a search is then one round trip.
        await self.db.open(
            search_path=ext,
            init=init,
            extra_settings={
                "hnsw.ef_search": str(self.ef_search),
                "hnsw.iterative_scan": "relaxed_order",
            },
        )

    async def aclose(self) -> None:
        await self.db.close()

    async def optimize(self) -> bool:
        """Nothing to do: pgvector maintains the HNSW index on every write."""
        return False

    async def drop(self) -> None:
        """Drop this collection's tables (not the schema), then close the pool."""
        async with self.db.session("drop the tables") as conn:
            await drop_component(conn, self.names.schema, self._component, (self._t, self._h))
        await self.aclose()

    # -- plumbing ----------------------------------------------------------

    async def _write(self, what: str, op: Callable[[Any], Awaitable[_T]]) -> _T:
        """Run a write in one transaction, never retried: its commit may have happened."""
        return await self.db.run(what, op)

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
        rows = [record_to_row(r, tsvector_text(self.lexical.terms(r))) for r in latest.values()]
        history = [
            (r.memory.id, r.memory.user_id, h.version, h.event.value, h.content,
             to_json(dict(h.metadata)), h.at)
            for r in records
            for h in r.history
        ]  # fmt: skip
        t, h, cols, hcols = self._t, self._h, ", ".join(MEMORY_COLUMNS), HISTORY_COLUMNS[1:]
        source = cols.replace("lexemes", "lexemes::tsvector")
        prune = self.history_limit

        async def op(conn: Any) -> None:
            if also is not None:
                await also(conn)
            if not rows:
                return
            await conn.copy_records_to_table(TEMP_ROWS, records=rows, columns=MEMORY_COLUMNS)
            written = await conn.fetch(
                f"INSERT INTO {t} AS o ({cols}) SELECT {source} FROM {TEMP_ROWS} ON CONFLICT (id)"
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

    async def discard(self, memory_ids: Sequence[UUID]) -> None:
        """Remove rows and their history by id, whatever state they are in (repair)."""
        ids = list(memory_ids)

        async def op(conn: Any) -> None:
            await conn.execute(f"DELETE FROM {self._h} WHERE memory_id = ANY($1::uuid[])", ids)
            await conn.execute(f"DELETE FROM {self._t} WHERE id = ANY($1::uuid[])", ids)

        if ids:
            await self._write("discard memories", op)

    # -- the collection ----------------------------------------------------

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
                "database": self.db.where,
            },
        )
