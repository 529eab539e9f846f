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

import qdrant_edge as qe

from membank_server.domain.errors import (
    ConfigError,
    InsufficientStorage,
    MembankError,
    StorageUnavailable,
)
from membank_server.domain.integrity import IntegrityReport
from membank_server.domain.model import (
    CollectionInfo,
    DiskState,
    HistoryEvent,
    Memory,
    MemoryRecord,
    Page,
    SearchHit,
    Usage,
    VectorQuery,
)
from membank_server.storage._checked import (
    checked_memory,
    checked_record,
    damaged,
    owned_live,
    sound,
)
from membank_server.storage._edge_ops import (
    Op,
    apply_group,
    disk_full,
    edge_filter,
    move_legacy_history,
    owned_elsewhere,
    record_size,
    verify_shard,
)
from membank_server.storage._edge_probe import probe_shard
from membank_server.storage._edge_reads import is_panic, retrieve, scroll
from membank_server.storage._edge_reads import query as resilient_query
from membank_server.storage._payload import (
    BYTES,
    HISTORY,
    INDEXED_KEYWORDS,
    INDEXED_NUMBERS,
    Cond,
    live_conditions,
    record_to_payload,
    search_conditions,
)
from membank_server.storage._sqlite_history import SqliteHistory
from membank_server.storage.folder import OPEN_BYTES, DiskGuard

__all__ = ["EdgeStore"]

_T = TypeVar("_T")
_DISTANCES = {"cosine": "Cosine", "dot": "Dot", "euclid": "Euclid"}
_log = logging.getLogger("membank.storage")
# Points of earlier versions may still carry a history field until moved at open.
_NO_HISTORY = qe.PayloadSelector.Exclude([HISTORY])
_VERSION_ONLY = qe.PayloadSelector.Include(["user_id", "version"])
_BYTES_ONLY = qe.PayloadSelector.Include([BYTES])
#: "Every version" for a history read.
_ALL = 2**62


class EdgeStore:
    """A :class:`~membank_server.domain.ports.MemoryStore` on an embedded Qdrant Edge shard.

    Args:
        path: The shard's folder (one process may open it at a time).
        dimension: Vector size; must match an existing shard.
        distance: ``cosine``, ``dot`` or ``euclid``.
        hnsw_m: HNSW graph degree.
        hnsw_ef_construction: HNSW build-time beam (ef_construct).
        hnsw_ef_search: Search-time beam (hnsw_ef).
        full_scan_threshold: Below this many KB of a tenant's vectors, search is exact.
        optimize_on_start: Build pending HNSW segments when the store starts.
        search_threads: Threads for reads (Edge holds the GIL: more adds little).
        history_limit: Versions of history kept per memory (None: all).
        disk_reserve: Free bytes the filesystem must keep; a write that would eat into
            them is refused with ``InsufficientStorage`` (see ``storage.folder``).
        check_on_start: Load the shard in a throwaway process first (``_edge_probe``),
            so damaged files cannot crash the server or exhaust its memory.
    """

    backend = "edge"

    def __init__(
        self,
        path: Path,
        *,
        dimension: int,
        distance: str = "cosine",
        hnsw_m: int = 16,
        hnsw_ef_construction: int = 100,
        hnsw_ef_search: int = 128,
        full_scan_threshold: int = 10_000,
        optimize_on_start: bool = False,
        search_threads: int = 2,
        history_limit: int | None = 100,
        disk_reserve: int = 128 * 1024 * 1024,
        check_on_start: bool = True,
    ) -> None:
        if distance not in _DISTANCES:
            raise ConfigError(f"storage distance must be one of {sorted(_DISTANCES)}")
        self.path = path
        self.dimension = dimension
        self.distance = distance
        self._hnsw = qe.HnswIndexConfig(
            m=hnsw_m, ef_construct=hnsw_ef_construction, full_scan_threshold=full_scan_threshold
        )
        self._params = qe.SearchParams(hnsw_ef=hnsw_ef_search)
        self.optimize_on_start = optimize_on_start
        self.check_on_start = check_on_start
        self._readers = ThreadPoolExecutor(search_threads, thread_name_prefix="edge-read")
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="edge-write")
        self._shard: Any = None
        self._history = SqliteHistory(path / "history.db", history_limit)
        self.guard = DiskGuard(path, disk_reserve)
        # What a read checks a vector against: its size, and unit length for cosine
        # (Qdrant keeps cosine vectors normalised).
        self._shape: dict[str, Any] = {"dimension": dimension, "unit": distance == "cosine"}
        self._pending: list[tuple[Op, asyncio.Future[None]]] = []
        self._committing: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        if not self.guard.can_open():
            free = self.guard.state().free
            raise InsufficientStorage(
                f"not enough free disk to open the store at {self.path} safely "
                f"({free // 2**20} MiB free, {OPEN_BYTES // 2**20} MiB needed): free some space",
                {"free_bytes": free},
            )
        if self.check_on_start and (self.path / "edge_config.json").exists():
            await asyncio.to_thread(probe_shard, self.path)
        self._shard = await self._run(self._writer, self._open)
        try:
            await self._run(self._writer, self._history.open)
        except StorageUnavailable as exc:
            raise StorageUnavailable(
                f"the history database {self._history.path} could not be opened "
                f"({exc.message.removeprefix('Qdrant Edge failed: ')}): restore the folder from "
                "a backup, or move that file aside to keep the memories without their history"
            ) from exc
        shard, history = self._shard, self._history
        moved = await self._run(self._writer, lambda: move_legacy_history(shard, history))
        if moved:
            _log.info("moved the history of %d memories out of their payloads", moved)
        if self.optimize_on_start:
            await self.optimize()

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

    def disk_state(self) -> DiskState:
        """Free space under the store's folder and the reserve writes keep."""
        return self.guard.state()

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
        except BaseException as exc:
            # A Rust panic (damaged files) arrives as a BaseException: a failed call, not
            # the end of the process.
            if is_panic(exc):
                raise StorageUnavailable(f"Qdrant Edge failed: {str(exc)[:300]}") from exc
            raise

    async def _read(self, fn: Callable[[Any], _T]) -> _T:
        shard = self._require()
        return await self._run(self._readers, lambda: fn(shard))

    def _require(self) -> Any:
        if self._shard is None:
            raise StorageUnavailable("the Qdrant Edge store is not open")
        return self._shard

    async def _write(self, op: Op) -> None:
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
                    self._writer, apply_group, shard, self._history, ops
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
                    kind = InsufficientStorage if disk_full(error) else StorageUnavailable
                    failure = kind(f"Qdrant Edge write failed: {error}")
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
        size = sum(record_size(r) for r in records)
        # Tombstones (a DELETE) pass while only deletes do: that is how users free space.
        deleting = all(r.deleted_at is not None for r in records)

        def op(shard: Any, history: SqliteHistory) -> None:
            self.guard.check(size, delete=deleting)
            owned_elsewhere(shard, records, claims)
            history.add(events)
            shard.update(upsert)

        await self._write(op)

    async def delete_user(self, user_id: str) -> int:
        live = await self.count(user_id)
        user = edge_filter([Cond("eq", "user_id", user_id)])

        def op(shard: Any, history: SqliteHistory) -> None:
            self.guard.check(delete=True)
            history.delete_user(user_id)
            shard.update(qe.UpdateOperation.delete_points_by_filter(user))

        await self._write(op)
        return live

    async def purge_expired(self, now: datetime) -> int:
        expired = edge_filter([Cond("range", "expires_ts", lte=now.timestamp())])
        ids: list[Any] = []
        offset: Any = None
        while True:
            points, offset = await self._scroll(
                offset=offset, limit=1000, filter=expired, with_payload=False
            )
            ids.extend(str(p.id) for p in points)
            if offset is None:
                break
        if ids:

            def op(shard: Any, history: SqliteHistory) -> None:
                self.guard.check(delete=True)
                history.delete_memories(ids)
                shard.update(qe.UpdateOperation.delete_points(ids))

            await self._write(op)
        return len(ids)

    # -- reads -------------------------------------------------------------

    async def get(self, user_id: str, memory_ids: Sequence[UUID]) -> dict[UUID, MemoryRecord]:
        if not memory_ids:
            return {}
        ids = [str(i) for i in memory_ids]
        found = await self._read(lambda shard: retrieve(shard, ids, _NO_HISTORY, True))
        out: dict[UUID, MemoryRecord] = {}
        for rec in found:
            if rec.payload and rec.payload.get("user_id") == user_id:
                r = self._record(rec)
                out[r.memory.id] = r
        return out

    async def history(
        self, user_id: str, memory_id: UUID, *, all_versions: bool = False
    ) -> tuple[HistoryEvent, ...]:
        history = self._history
        if all_versions:
            return await self._read(lambda _: history.read(user_id, str(memory_id), _ALL))
        version = _VERSION_ONLY
        found = await self._read(lambda shard: retrieve(shard, [str(memory_id)], version, False))
        if not found or not found[0].payload or found[0].payload.get("user_id") != user_id:
            return ()
        up_to = int(found[0].payload["version"])
        return await self._read(lambda _: history.read(user_id, str(memory_id), up_to))

    async def usage(self, user_id: str) -> Usage:
        conds = edge_filter(live_conditions(user_id, datetime.now(UTC)))
        memories = total = 0
        offset: Any = None
        while True:
            points, offset = await self._scroll(
                offset=offset, limit=2000, filter=conds, with_payload=_BYTES_ONLY
            )
            memories += len(points)
            total += sum(int((p.payload or {}).get(BYTES, 0)) for p in points)
            if offset is None:
                return Usage(memories, total)

    async def scan(
        self, cursor: str | None = None, limit: int = 500
    ) -> tuple[list[MemoryRecord], str | None]:
        points, next_offset = await self._scroll(
            offset=cursor, limit=limit, with_payload=True, with_vector=True
        )
        history = self._history
        events = await self._read(lambda _: history.read_many([str(p.id) for p in points]))
        records = []
        # A damaged record is left out (and logged): a copy or a backup of the store
        # carries only what is sound; `verify` lists the rest.
        for record in sound(
            points, lambda p: checked_record(p.id, p.payload, p.vector, **self._shape)
        ):
            kept = tuple(
                h
                for h in events.get(str(record.memory.id), ())
                if h.version <= record.memory.version
            )
            records.append(dataclasses.replace(record, history=kept))
        return records, str(next_offset) if next_offset is not None else None

    async def verify(self, progress: Callable[[int], None] | None = None) -> IntegrityReport:
        """Check every record and the history database (``domain.integrity``)."""
        shard, history = self._require(), self._history
        return await self._run(
            self._readers, lambda: verify_shard(shard, history, progress=progress, **self._shape)
        )

    async def discard(self, memory_ids: Sequence[UUID]) -> None:
        """Remove records and their history by id, whatever state they are in (repair)."""
        ids: list[Any] = [str(i) for i in memory_ids]
        if not ids:
            return

        def op(shard: Any, history: SqliteHistory) -> None:
            self.guard.check(delete=True)
            history.delete_memories(ids)
            shard.update(qe.UpdateOperation.delete_points(ids))

        await self._write(op)

    async def owners(self, memory_ids: Sequence[UUID]) -> dict[UUID, str]:
        if not memory_ids:
            return {}
        ids = [str(i) for i in memory_ids]
        selector = qe.PayloadSelector.Include(["user_id"])
        found = await self._read(lambda shard: retrieve(shard, ids, selector, False))
        return {UUID(str(r.id)): r.payload["user_id"] for r in found if r.payload}

    async def find_by_hash(
        self, pairs: Sequence[tuple[str, str]], now: datetime
    ) -> dict[tuple[str, str], Memory]:
        if not pairs:
            return {}
        by_user: dict[str, set[str]] = {}
        for user_id, digest in pairs:
            by_user.setdefault(user_id, set()).add(digest)
        flt = qe.Filter(
            should=[
                edge_filter(
                    [*live_conditions(u, now), Cond("any", "content_hash", sorted(set(hs)))]
                )
                for u, hs in by_user.items()
            ]
        )
        selector = _NO_HISTORY
        wanted = set(pairs)
        out: dict[tuple[str, str], Memory] = {}
        offset: Any = None
        while True:
            records, offset = await self._scroll(
                offset=offset, limit=len(pairs) + 16, filter=flt, with_payload=selector
            )
            for memory in sound(records, lambda r: checked_memory(r.id, r.payload)):
                key = (memory.user_id, memory.content_hash)
                if key in wanted and key not in out:
                    out[key] = memory
            if offset is None or len(out) == len(wanted):
                break
        return out

    async def _scroll(self, **request: Any) -> tuple[list[Any], Any]:
        return await self._read(lambda shard: scroll(shard, **request))

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
        records, next_offset = await self._scroll(
            offset=cursor, limit=limit, filter=edge_filter(conds), with_payload=_NO_HISTORY
        )
        return Page(
            items=tuple(
                sound(records, lambda r: owned_live(checked_memory(r.id, r.payload), user_id, now))
            ),
            next_cursor=str(next_offset) if next_offset is not None else None,
        )

    async def search(self, query: VectorQuery) -> list[SearchHit]:
        request = {
            "limit": query.limit,
            "query": qe.Query.Nearest(list(query.vector)),
            "filter": edge_filter(search_conditions(query.user_id, query.now, query.filters)),
            "with_payload": _NO_HISTORY,
            "score_threshold": query.min_score,
            "params": self._params,
        }
        points = await self._read(lambda shard: resilient_query(shard, **request))
        return sound(points, lambda p: self._hit(p, query))

    def _record(self, p: Any) -> MemoryRecord:
        return checked_record(p.id, p.payload, p.vector, **self._shape)

    def _hit(self, p: Any, query: VectorQuery) -> SearchHit:
        score = float(p.score)
        if self._shape["unit"] and not -1.001 <= score <= 1.001:
            raise damaged(p.id, f"a cosine score of {score:.3f}: its vector is damaged")
        memory = owned_live(checked_memory(p.id, p.payload), query.user_id, query.now)
        return SearchHit(memory, score)

    async def count(self, user_id: str | None = None) -> int:
        now = datetime.now(UTC)
        conds = live_conditions(user_id, now) if user_id else live_conditions("", now)[1:]
        request = qe.CountRequest(filter=edge_filter(conds))
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
