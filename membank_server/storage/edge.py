"""EdgeStore: the embedded default, Qdrant Edge on local disk.

Qdrant Edge is synchronous and holds the GIL while it works, so every call runs
on a private thread and never on the event loop. Writes go through one writer
thread that commits them in groups: each group is applied, then flushed once,
and only then are its callers answered, so a 2xx means the write is on disk
without paying a flush per request.

HNSW: ``optimize()`` builds it, but it holds the GIL for its whole run
(about 6 s for 20k points, a minute for 100k on 2 cores), which would freeze
the server. Searches are always filtered by the ``is_tenant`` user index, so
Qdrant scans a tenant's own points exactly below ``full_scan_threshold`` and
needs HNSW only for very large tenants: the index is built by
``membank collection optimize`` (server stopped) or, when configured, when the
server starts (:attr:`EdgeStore.optimize_on_start`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import shutil
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import numpy as np
import qdrant_edge as qe

from membank_server.domain.errors import ConfigError, Conflict, MembankError, StorageUnavailable
from membank_server.domain.model import (
    CollectionInfo,
    HistoryEvent,
    Memory,
    MemoryRecord,
    Page,
    SearchHit,
    Usage,
    VectorQuery,
)
from membank_server.storage._payload import (
    BYTES,
    HISTORY,
    INDEXED_KEYWORDS,
    INDEXED_NUMBERS,
    Cond,
    legacy_history,
    live_conditions,
    memory_from_payload,
    record_from_payload,
    record_to_payload,
    search_conditions,
)
from membank_server.storage._sqlite_history import SqliteHistory

__all__ = ["EdgeStore"]

_T = TypeVar("_T")
#: A write run by the writer thread, on the shard and the history database.
_Op = Callable[[Any, SqliteHistory], None]
_DISTANCES = {"cosine": "Cosine", "dot": "Dot", "euclid": "Euclid"}
_log = logging.getLogger("membank.storage")
# Points of earlier versions may still carry a history field until moved at open.
_NO_HISTORY = qe.PayloadSelector.Exclude([HISTORY])
_VERSION_ONLY = qe.PayloadSelector.Include(["user_id", "version"])
_BYTES_ONLY = qe.PayloadSelector.Include([BYTES])


def _condition(c: Cond) -> Any:
    if c.op == "eq":
        # The binding reads a Python bool as an integer (bool subclasses int), so
        # MatchValue(False) would match 0 and never false; numpy's bool_ stays a bool.
        value: Any = np.bool_(c.value) if isinstance(c.value, bool) else c.value
        return qe.FieldCondition(key=c.key, match=qe.MatchValue(value))
    if c.op == "any":
        strings = [v for v in c.value if isinstance(v, str)]
        numbers = [v for v in c.value if not isinstance(v, str)]
        if strings and numbers:
            # MatchAny takes values of one type; a mixed list is either of two.
            return qe.Filter(
                should=[
                    qe.FieldCondition(key=c.key, match=qe.MatchAny(strings)),
                    qe.FieldCondition(key=c.key, match=qe.MatchAny(numbers)),
                ]
            )
        return qe.FieldCondition(key=c.key, match=qe.MatchAny(c.value))
    if c.op == "set":
        return qe.Filter(must_not=[qe.IsEmptyCondition(c.key)])
    return qe.FieldCondition(key=c.key, range=qe.RangeFloat(gte=c.gte, lte=c.lte, gt=c.gt))


def _filter(conds: Sequence[Cond]) -> Any:
    return qe.Filter(must=[_condition(c) for c in conds])


def _apply_group(shard: Any, history: SqliteHistory, ops: list[_Op]) -> list[Exception | None]:
    """Apply a group of writes, then commit history and flush the shard once each: the
    group is durable when this returns. Each write runs in a savepoint of the history
    transaction, undone if the write fails, so one failed write does not fail its group."""
    outcomes: list[Exception | None] = []
    history.begin()
    try:
        for op in ops:
            history.savepoint("op")
            try:
                op(shard, history)
                history.release("op")
                outcomes.append(None)
            except Exception as exc:  # noqa: BLE001 - one failed write must not fail its group
                history.undo("op")
                outcomes.append(exc)
        # History first: an event may outlive a crash its record did not (it is then
        # never shown, see SqliteHistory), never the other way round.
        history.commit()
    except BaseException:
        history.rollback()
        raise
    shard.flush()
    return outcomes


def _owned_elsewhere(shard: Any, records: Sequence[MemoryRecord], claims: Collection[UUID]) -> None:
    """Raise Conflict when a claimed id belongs to another user. Run by the writer thread,
    which applies every write in turn, so nothing can take the id between this look and
    the write that follows it."""
    wanted = {r.memory.id: r.memory.user_id for r in records if r.memory.id in claims}
    if not wanted:
        return
    found = shard.retrieve([str(i) for i in wanted], qe.PayloadSelector.Include(["user_id"]), False)
    taken = sorted(
        str(r.id)
        for r in found
        if r.payload and r.payload.get("user_id") != wanted[UUID(str(r.id))]
    )
    if taken:
        raise Conflict("this id belongs to another memory", {"field": "id", "ids": taken})


class EdgeStore:
    """A :class:`~membank_server.domain.ports.MemoryStore` on an embedded Qdrant Edge shard.

    Args:
        path: The shard's folder (one process may open it at a time).
        dimension: Vector size; must match an existing shard.
        distance: ``cosine``, ``dot`` or ``euclid``.
        hnsw_m: HNSW graph degree.
        hnsw_ef_construct: HNSW build-time beam.
        hnsw_ef: Search-time beam.
        full_scan_threshold: Below this many KB of a tenant's vectors, search is exact.
        optimize_on_start: Build pending HNSW segments when the store starts.
        search_threads: Threads for reads (Edge holds the GIL: more adds little).
        history_limit: Versions of history kept per memory (None: all).
    """

    backend = "edge"

    def __init__(
        self,
        path: Path,
        *,
        dimension: int,
        distance: str = "cosine",
        hnsw_m: int = 16,
        hnsw_ef_construct: int = 100,
        hnsw_ef: int = 128,
        full_scan_threshold: int = 10_000,
        optimize_on_start: bool = False,
        search_threads: int = 2,
        history_limit: int | None = 100,
    ) -> None:
        if distance not in _DISTANCES:
            raise ConfigError(f"storage distance must be one of {sorted(_DISTANCES)}")
        self.path = path
        self.dimension = dimension
        self.distance = distance
        self._hnsw = qe.HnswIndexConfig(
            m=hnsw_m, ef_construct=hnsw_ef_construct, full_scan_threshold=full_scan_threshold
        )
        self._params = qe.SearchParams(hnsw_ef=hnsw_ef)
        self.optimize_on_start = optimize_on_start
        self._readers = ThreadPoolExecutor(search_threads, thread_name_prefix="edge-read")
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="edge-write")
        self._shard: Any = None
        self._history = SqliteHistory(path / "history.db", history_limit)
        self._pending: list[tuple[_Op, asyncio.Future[None]]] = []
        self._committing: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        self._shard = await self._run(self._writer, self._open)
        await self._run(self._writer, self._history.open)
        moved = await self._run(self._writer, self._move_legacy_history)
        if moved:
            _log.info("moved the history of %d memories out of their payloads", moved)
        if self.optimize_on_start:
            await self.optimize()

    def _move_legacy_history(self) -> int:
        """Points written by earlier versions carry their history in the payload: move it
        to the history database, and give them their ``bytes``, once, at open."""
        shard, moved = self._shard, 0
        legacy = qe.Filter(must_not=[qe.IsEmptyCondition(HISTORY)])
        while True:
            request = qe.ScrollRequest(limit=500, filter=legacy, with_payload=True)
            points, _ = shard.scroll(request)
            if not points:
                return moved
            events: list[tuple[Memory, HistoryEvent]] = []
            for p in points:
                memory = memory_from_payload(p.id, p.payload)
                events.extend((memory, h) for h in legacy_history(p.payload) or ())
            self._history.begin()
            self._history.add(events)
            self._history.commit()
            for p in points:
                record = record_from_payload(p.id, p.payload, None)
                shard.update(
                    qe.UpdateOperation.set_payload(
                        [p.id], {BYTES: record_to_payload(record)[BYTES]}
                    )
                )
            shard.update(qe.UpdateOperation.delete_payload([p.id for p in points], [HISTORY]))
            shard.flush()
            moved += len(points)

    def _config(self) -> Any:
        return qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(
                size=self.dimension, distance=getattr(qe.Distance, _DISTANCES[self.distance])
            ),
            hnsw_config=self._hnsw,
        )

    def _open(self) -> Any:
        exists = (self.path / "edge_config.json").exists()
        try:
            if exists:
                # Loading with our config checks it against the segments on disk.
                return qe.EdgeShard.load(str(self.path), self._config())
            self.path.mkdir(parents=True, exist_ok=True)
            shard = qe.EdgeShard.create(str(self.path), self._config())
            shard.update(
                qe.UpdateOperation.create_field_index(
                    "user_id", qe.KeywordIndexParams(is_tenant=True)
                )
            )
            for key in INDEXED_KEYWORDS:
                shard.update(
                    qe.UpdateOperation.create_field_index(key, qe.PayloadSchemaType.Keyword)
                )
            for key in INDEXED_NUMBERS:
                shard.update(qe.UpdateOperation.create_field_index(key, qe.PayloadSchemaType.Float))
            shard.flush()
            return shard
        except Exception as exc:
            text = str(exc)
            if "incompatible" in text.lower():
                raise ConfigError(
                    f"the collection at {self.path} does not match storage settings "
                    f"(dimension {self.dimension}, distance {self.distance}): {text}"
                ) from exc
            hint = " (is another membank process using this data folder?)" if "WAL" in text else ""
            raise StorageUnavailable(
                f"cannot open the Qdrant Edge shard at {self.path}: {text}{hint}"
            ) from exc

    async def aclose(self) -> None:
        if self._committing is not None:
            await self._committing
        if self._shard is not None:
            shard, self._shard = self._shard, None
            await self._run(self._writer, lambda: (shard.flush(), shard.close()))
        self._readers.shutdown(wait=True)
        self._writer.shutdown(wait=True)
        self._history.close()

    async def optimize(self) -> bool:
        """Build HNSW for unindexed segments; blocks the process while it runs."""
        return bool(await self._run(self._writer, lambda: self._shard.optimize()))

    # -- plumbing ----------------------------------------------------------

    async def _run(self, pool: ThreadPoolExecutor, fn: Callable[[], _T]) -> _T:
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, fn)
        except MembankError:
            raise
        except Exception as exc:
            raise StorageUnavailable(f"Qdrant Edge failed: {exc}") from exc

    async def _read(self, fn: Callable[[Any], _T]) -> _T:
        shard = self._require()
        return await self._run(self._readers, lambda: fn(shard))

    def _require(self) -> Any:
        if self._shard is None:
            raise StorageUnavailable("the Qdrant Edge store is not open")
        return self._shard

    async def _write(self, op: _Op) -> None:
        """Queue a write and wait until the group that carries it is flushed."""
        self._require()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((op, future))
        if self._committing is None or self._committing.done():
            self._committing = asyncio.create_task(self._commit_loop())
        await future

    async def _commit_loop(self) -> None:
        while self._pending:
            group, self._pending = self._pending, []
            ops = [op for op, _ in group]
            shard = self._require()
            try:
                outcomes = await asyncio.get_running_loop().run_in_executor(
                    self._writer, _apply_group, shard, self._history, ops
                )
            except Exception as exc:  # noqa: BLE001 - qdrant_edge raises bare Exception
                outcomes = [exc] * len(group)
            for (_, future), error in zip(group, outcomes, strict=True):
                if future.done():
                    continue
                if error is None:
                    future.set_result(None)
                elif isinstance(error, MembankError):
                    future.set_exception(error)
                else:
                    failure = StorageUnavailable(f"Qdrant Edge write failed: {error}")
                    failure.__cause__ = error
                    future.set_exception(failure)

    # -- writes ------------------------------------------------------------

    async def upsert(
        self, records: Sequence[MemoryRecord], *, claims: Collection[UUID] = ()
    ) -> None:
        if not records:
            return
        points = [
            qe.Point(id=str(r.memory.id), vector=list(r.vector), payload=record_to_payload(r))
            for r in records
        ]
        events = [(r.memory, h) for r in records for h in r.history]
        upsert = qe.UpdateOperation.upsert_points(points)

        def op(shard: Any, history: SqliteHistory) -> None:
            _owned_elsewhere(shard, records, claims)
            history.add(events)
            shard.update(upsert)

        await self._write(op)

    async def delete_user(self, user_id: str) -> int:
        live = await self.count(user_id)
        user = _filter([Cond("eq", "user_id", user_id)])

        def op(shard: Any, history: SqliteHistory) -> None:
            history.delete_user(user_id)
            shard.update(qe.UpdateOperation.delete_points_by_filter(user))

        await self._write(op)
        return live

    async def purge_expired(self, now: datetime) -> int:
        expired = _filter([Cond("range", "expires_ts", lte=now.timestamp())])
        ids: list[Any] = []
        offset: Any = None
        while True:
            request = qe.ScrollRequest(
                offset=offset, limit=1000, filter=expired, with_payload=False
            )
            points, offset = await self._scroll(request)
            ids.extend(str(p.id) for p in points)
            if offset is None:
                break
        if ids:

            def op(shard: Any, history: SqliteHistory) -> None:
                history.delete_memories(ids)
                shard.update(qe.UpdateOperation.delete_points(ids))

            await self._write(op)
        return len(ids)

    # -- reads -------------------------------------------------------------

    async def get(self, user_id: str, memory_ids: Sequence[UUID]) -> dict[UUID, MemoryRecord]:
        if not memory_ids:
            return {}
        ids = [str(i) for i in memory_ids]
        found = await self._read(lambda shard: shard.retrieve(ids, _NO_HISTORY, True))
        out: dict[UUID, MemoryRecord] = {}
        for rec in found:
            if rec.payload and rec.payload.get("user_id") == user_id:
                vector = rec.vector if isinstance(rec.vector, list) else None
                r = record_from_payload(rec.id, rec.payload, vector)
                out[r.memory.id] = r
        return out

    async def history(self, user_id: str, memory_id: UUID) -> tuple[HistoryEvent, ...]:
        version = _VERSION_ONLY
        found = await self._read(lambda shard: shard.retrieve([str(memory_id)], version, False))
        if not found or not found[0].payload or found[0].payload.get("user_id") != user_id:
            return ()
        up_to = int(found[0].payload["version"])
        history = self._history
        return await self._read(lambda _: history.read(user_id, str(memory_id), up_to))

    async def usage(self, user_id: str) -> Usage:
        conds = _filter(live_conditions(user_id, datetime.now(UTC)))
        memories = total = 0
        offset: Any = None
        while True:
            request = qe.ScrollRequest(
                offset=offset, limit=2000, filter=conds, with_payload=_BYTES_ONLY
            )
            points, offset = await self._scroll(request)
            memories += len(points)
            total += sum(int((p.payload or {}).get(BYTES, 0)) for p in points)
            if offset is None:
                return Usage(memories, total)

    async def scan(
        self, cursor: str | None = None, limit: int = 500
    ) -> tuple[list[MemoryRecord], str | None]:
        request = qe.ScrollRequest(offset=cursor, limit=limit, with_payload=True, with_vector=True)
        points, next_offset = await self._scroll(request)
        history = self._history
        events = await self._read(lambda _: history.read_many([str(p.id) for p in points]))
        records = []
        for p in points:
            record = record_from_payload(
                p.id, p.payload or {}, p.vector if isinstance(p.vector, list) else None
            )
            kept = tuple(h for h in events.get(str(p.id), ()) if h.version <= record.memory.version)
            records.append(dataclasses.replace(record, history=kept))
        return records, str(next_offset) if next_offset is not None else None

    async def owners(self, memory_ids: Sequence[UUID]) -> dict[UUID, str]:
        if not memory_ids:
            return {}
        ids = [str(i) for i in memory_ids]
        selector = qe.PayloadSelector.Include(["user_id"])
        found = await self._read(lambda shard: shard.retrieve(ids, selector, False))
        return {UUID(str(r.id)): r.payload["user_id"] for r in found if r.payload}

    async def find_by_hash(
        self, pairs: Sequence[tuple[str, str]], now: datetime
    ) -> dict[tuple[str, str], Memory]:
        if not pairs:
            return {}
        by_user: dict[str, list[str]] = {}
        for user_id, digest in pairs:
            by_user.setdefault(user_id, []).append(digest)
        flt = qe.Filter(
            should=[
                _filter([*live_conditions(u, now), Cond("any", "content_hash", sorted(set(hs)))])
                for u, hs in by_user.items()
            ]
        )
        selector = _NO_HISTORY
        wanted = set(pairs)
        out: dict[tuple[str, str], Memory] = {}
        offset: Any = None
        while True:
            request = qe.ScrollRequest(
                offset=offset, limit=len(pairs) + 16, filter=flt, with_payload=selector
            )
            records, offset = await self._scroll(request)
            for rec in records:
                memory = memory_from_payload(rec.id, rec.payload)
                key = (memory.user_id, memory.content_hash)
                if key in wanted and key not in out:
                    out[key] = memory
            if offset is None or len(out) == len(wanted):
                break
        return out

    async def _scroll(self, request: Any) -> tuple[list[Any], Any]:
        return await self._read(lambda shard: shard.scroll(request))

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
        conds = live_conditions(user_id, now)
        if agent_id is not None:
            conds.append(Cond("eq", "agent_id", agent_id))
        if session_id is not None:
            conds.append(Cond("eq", "session_id", session_id))
        request = qe.ScrollRequest(
            offset=cursor,
            limit=limit,
            filter=_filter(conds),
            with_payload=_NO_HISTORY,
        )
        records, next_offset = await self._read(lambda shard: shard.scroll(request))
        return Page(
            items=tuple(memory_from_payload(r.id, r.payload) for r in records),
            next_cursor=str(next_offset) if next_offset is not None else None,
        )

    async def search(self, query: VectorQuery) -> list[SearchHit]:
        request = qe.QueryRequest(
            limit=query.limit,
            query=qe.Query.Nearest(list(query.vector)),
            filter=_filter(search_conditions(query.user_id, query.now, query.filters)),
            with_payload=_NO_HISTORY,
            score_threshold=query.min_score,
            params=self._params,
        )
        points = await self._read(lambda shard: shard.query(request))
        return [SearchHit(memory_from_payload(p.id, p.payload), float(p.score)) for p in points]

    async def count(self, user_id: str | None = None) -> int:
        now = datetime.now(UTC)
        conds = live_conditions(user_id, now) if user_id else live_conditions("", now)[1:]
        request = qe.CountRequest(filter=_filter(conds))
        return int(await self._read(lambda shard: shard.count(request)))

    async def info(self) -> CollectionInfo:
        shard_info = await self._read(lambda shard: shard.info())
        return CollectionInfo(
            backend=self.backend,
            name=self.path.name,
            dimension=self.dimension,
            distance=self.distance,
            points=int(shard_info.points_count),
            indexed_vectors=int(shard_info.indexed_vectors_count),
            segments=int(shard_info.segments_count),
            extra={
                "path": str(self.path),
                "payload_indexes": {
                    k: str(v.data_type).rsplit(".", 1)[-1]
                    for k, v in shard_info.payload_schema.items()
                },
            },
        )

    async def drop(self) -> None:
        if self._shard is not None:
            shard, self._shard = self._shard, None
            await self._run(self._writer, shard.close)
        self._history.close()
        await asyncio.to_thread(shutil.rmtree, self.path, True)
