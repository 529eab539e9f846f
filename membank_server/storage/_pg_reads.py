"""The reads of the memories tables in PostgreSQL: SQL, then rows decoded and checked.

:class:`PgMemoryReads` is the half of :class:`~membank_server.storage.pgvector.PgVectorStore`
that never writes: each read runs on a pooled connection outside any transaction,
again on a fresh one when the link broke (``retries``). Rows are checked on the
way out (:mod:`membank_server.storage._pg_rows`): a damaged one raises where one
record was asked for, and is left out (logged) of listings, searches and scans.

Search runs with ``hnsw.iterative_scan = relaxed_order`` (pgvector 0.8, set as a
connection default): when a filter rejects most of the nearest rows the index
scan goes on (up to ``hnsw.max_scan_tuples``) instead of returning short
results; rows come nearly ordered and are re-sorted here. Cursors are the next
id, inclusive, like Qdrant's scroll offsets, so a cursor one store gave can page
another.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

from membank_server.domain.errors import IntegrityError, InvalidInput
from membank_server.domain.integrity import Damage, IntegrityReport
from membank_server.domain.model import (
    HistoryEvent,
    Memory,
    MemoryRecord,
    Page,
    SearchFilter,
    SearchHit,
    Usage,
    VectorQuery,
)
from membank_server.lexical import LexicalIndex
from membank_server.pg import DRIVER_ERRORS, Database, translate
from membank_server.storage._checked import sound
from membank_server.storage._pg_filters import Args, filters_sql
from membank_server.storage._pg_lexical import bm25_sql, tsquery_text
from membank_server.storage._pg_memories import DISTANCES, PgNames
from membank_server.storage._pg_rows import (
    LIVE,
    MEMORY_SELECT,
    history_from_rows,
    memory_from_row,
    record_from_row,
)

__all__ = ["PgMemoryReads", "PgSnapshot"]

_T = TypeVar("_T")


def _cursor(cursor: str) -> UUID:
    try:
        return UUID(cursor)
    except ValueError as exc:
        raise InvalidInput("the cursor is not one this server gave out") from exc


class PgMemoryReads:
    """Reads of one collection's tables through ``db``'s pool.

    Args:
        db: The pool (opened by the store).
        names: The collection's schema and tables.
        dimension: Vector size, checked on every record read whole.
        distance: ``cosine``, ``dot`` or ``euclid``: the operator and the score.
        retries: Attempts in all for a read whose connection broke.
    """

    def __init__(
        self, db: Database, names: PgNames, dimension: int, distance: str, retries: int
    ) -> None:
        self.db, self.names, self.dimension = db, names, dimension
        self.lexical = LexicalIndex()  # the store's own replaces it
        self._retries = retries
        _, self._op, self._score = DISTANCES[distance]
        self._t, self._h = names.q(names.prefix), names.q(names.history)

    async def _read(self, what: str, op: Callable[[Any], Awaitable[_T]]) -> _T:
        """Run a read, again on a fresh connection when the link broke."""
        return await self.db.run(what, op, transaction=False, attempts=self._retries)

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

    async def usage(self, user_id: str) -> Usage:
        sql = (
            "SELECT count(*) AS n, coalesce(sum(octet_length(m.content)"
            " + octet_length(m.metadata::text)), 0) AS bytes"
            f" FROM {self._t} m WHERE m.user_id = $1 AND {LIVE}"
        )
        now = datetime.now(UTC)
        row = await self._read("measure a user", lambda c: c.fetchrow(sql, user_id, now))
        return Usage(int(row["n"]), int(row["bytes"]))

    def _scan_sql(self) -> str:
        return self._records_sql(
            "($1::uuid IS NULL OR m.id >= $1)", " ORDER BY m.id LIMIT $2", history=True
        )

    def _page(self, rows: list[Any], limit: int) -> tuple[list[MemoryRecord], str | None]:
        # A damaged record is left out of copies and backups (logged; `verify` lists it).
        records = sound(rows[:limit], lambda r: record_from_row(r, self.dimension))
        if len(rows) > limit:
            return records, str(UUID(bytes=rows[limit]["id"].bytes))
        return records, None

    async def scan(
        self, cursor: str | None = None, limit: int = 500
    ) -> tuple[list[MemoryRecord], str | None]:
        """Every record in id order; the cursor is the next id, inclusive, as in ``list_page``."""
        start = _cursor(cursor) if cursor is not None else None
        sql = self._scan_sql()
        rows = await self._read("scan memories", lambda c: c.fetch(sql, start, max(limit, 0) + 1))
        return self._page(rows, limit)

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[PgSnapshot]:
        """Every record as of one instant: ``scan`` pages on one REPEATABLE READ
        transaction, whose snapshot is exported (``token``) for ``pg_dump --snapshot``."""
        async with self.db.snapshot("read a snapshot of the memories") as conn:
            token = str(await conn.fetchval("SELECT pg_export_snapshot()"))
            yield PgSnapshot(self, conn, token)

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

    def _dense_sql(self, query: VectorQuery, select: str) -> tuple[str, Args]:
        args = Args(query.user_id, query.now, list(query.vector))
        where = [f"m.user_id = $1 AND {LIVE} AND m.embedding IS NOT NULL"]
        where.extend(filters_sql(query.filters, args))
        sql = (
            f"SELECT {select}, m.embedding {self._op} $3 AS distance FROM {self._t} m"
            f" WHERE {' AND '.join(where)} ORDER BY m.embedding {self._op} $3"
            f" LIMIT {args.add(query.limit)}"
        )
        return sql, args

    def _lexical_sql(self, query: VectorQuery, select: str) -> tuple[str, Args]:
        distinct = list(dict.fromkeys(query.terms))
        args = Args(query.user_id, query.now, tsquery_text(distinct), distinct)
        wanted = " AND ".join(filters_sql(query.filters, args)) or "true"
        sql = bm25_sql(self._t, select, LIVE, wanted, self.lexical.weights)
        return sql + f" ORDER BY s.score DESC, m.id LIMIT {args.add(query.limit)}", args

    async def search(self, query: VectorQuery) -> list[SearchHit]:
        sql, args = self._dense_sql(query, MEMORY_SELECT)
        rows = await self._read("search", lambda c: c.fetch(sql, *args.values))
        # relaxed_order returns rows nearly sorted; put them in exact order.
        hits = sorted(
            sound(rows, lambda r: SearchHit(memory_from_row(r), self._score(float(r["distance"])))),
            key=lambda h: h.score,
            reverse=True,
        )
        if query.min_score is not None:
            hits = [h for h in hits if h.score >= query.min_score]
        return hits

    async def search_lexical(self, query: VectorQuery) -> list[SearchHit]:
        if not query.terms:
            return []
        sql, args = self._lexical_sql(query, MEMORY_SELECT)
        rows = await self._read("search", lambda c: c.fetch(sql, *args.values))
        return sound(rows, lambda r: SearchHit(memory_from_row(r), float(r["score"])))

    async def rank(self, query: VectorQuery, *, lexical: bool = False) -> list[tuple[UUID, float]]:
        if lexical and not query.terms:
            return []
        sql, args = (self._lexical_sql if lexical else self._dense_sql)(query, "m.id")
        rows = await self._read("search", lambda c: c.fetch(sql, *args.values))
        if lexical:
            return [(UUID(bytes=r["id"].bytes), float(r["score"])) for r in rows]
        scored = [(UUID(bytes=r["id"].bytes), self._score(float(r["distance"]))) for r in rows]
        scored.sort(key=lambda s: -s[1])  # relaxed_order, as in search
        return [s for s in scored if query.min_score is None or s[1] >= query.min_score]

    async def count(self, user_id: str | None = None) -> int:
        # $1 IS NULL keeps one statement for both cases, with $2 the clock as LIVE needs.
        sql = (
            f"SELECT count(*) FROM {self._t} m"
            f" WHERE {LIVE} AND ($1::text IS NULL OR m.user_id = $1)"
        )
        now = datetime.now(UTC)
        counted: int = await self._read("count memories", lambda c: c.fetchval(sql, user_id, now))
        return counted


class PgSnapshot:
    """The records of one exported snapshot, paged like ``scan`` (see ``snapshot``)."""

    def __init__(self, reads: PgMemoryReads, conn: Any, token: str) -> None:
        self._reads, self._conn, self.token = reads, conn, token
        self._sql = reads._scan_sql()

    async def scan(self, cursor: str | None, limit: int) -> tuple[list[MemoryRecord], str | None]:
        start = _cursor(cursor) if cursor is not None else None
        try:
            rows = await self._conn.fetch(self._sql, start, max(limit, 0) + 1)
        except DRIVER_ERRORS as exc:
            raise translate(exc, "scan a snapshot", dsn=self._reads.db.dsn) from exc
        return self._reads._page(rows, limit)
