"""EdgeStore: the embedded default, Qdrant Edge on local disk.

Every call to the shard runs on its own threads, writes committed in groups
(``_edge_shard``): a group's history is committed and the shard's write-ahead log
synced (``fdatasync``, ``_edge_wal``) before its callers are answered, so a 2xx
means the write survives kill -9 and a power loss; the segments are flushed in the
background and the WAL is replayed over them when the shard loads.

HNSW: Qdrant Edge's ``optimize()`` holds the GIL for its whole run (a minute for
100k points on 2 cores), so it runs in a child process on a copy of the shard that
is then caught up and swapped in (``_edge_build``; generations: ``_edge_generations``):
:meth:`EdgeStore.optimize`, by itself past ``build_threshold`` unindexed points, or
at start (``optimize_on_start``). Searches are filtered by the ``is_tenant`` user
index, so a tenant below ``full_scan_threshold`` is scanned exactly anyway.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import shutil
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import qdrant_edge as qe

from membank_server.domain.errors import ConfigError, InsufficientStorage
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
from membank_server.lexical import LexicalIndex
from membank_server.storage._checked import checked_record, sound
from membank_server.storage._edge_build import BuildReport, IndexBuilder
from membank_server.storage._edge_generations import live_folder
from membank_server.storage._edge_open import open_history, prepare_live
from membank_server.storage._edge_ops import (
    edge_filter,
    move_legacy_history,
    owned_elsewhere,
    record_size,
    verify_shard,
)
from membank_server.storage._edge_reads import query as resilient_query
from membank_server.storage._edge_reads import retrieve
from membank_server.storage._edge_scans import (
    NO_HISTORY,
    expired_ids,
    find_by_hash,
    histories,
    list_page,
    pages,
    usage,
)
from membank_server.storage._edge_search import checked_hit, dense_request, lexical_request
from membank_server.storage._edge_shard import (
    DISTANCES,
    ShardThreads,
    describe,
    open_shard,
    shard_config,
)
from membank_server.storage._edge_vectors import VectorLayout
from membank_server.storage._edge_wal import WalSync
from membank_server.storage._lexical import point_vectors
from membank_server.storage._payload import Cond, live_conditions, record_to_payload
from membank_server.storage._sqlite_history import SqliteHistory
from membank_server.storage.folder import OPEN_BYTES, DiskGuard

__all__ = ["EdgeStore", "VectorLayout"]

_log = logging.getLogger("membank.storage")
_VERSION_ONLY = qe.PayloadSelector.Include(["user_id", "version"])
#: "Every version" for a history read.
_ALL = 2**62


class EdgeStore:
    """A :class:`~membank_server.domain.ports.MemoryStore` on an embedded Qdrant Edge shard.

    Args:
        path: The collection's folder (its shard generations: ``_edge_generations``).
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
        lexical: How records are indexed for lexical search (``_lexical``).
        flush_interval: Seconds between background flushes of the segments.
        build_threshold, build_check_interval: Background index builds (``IndexBuilder``).
        indexing_threshold_kb: KB of vectors past which a segment gets HNSW (Qdrant's).
        vectors: Quantization and placement of the dense vectors (``_edge_vectors``).
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
        lexical: LexicalIndex | None = None,
        flush_interval: float = 1.0,
        build_threshold: int = 0,
        build_check_interval: float = 30.0,
        indexing_threshold_kb: int | None = None,
        vectors: VectorLayout | None = None,
    ) -> None:
        if distance not in DISTANCES:
            raise ConfigError(f"storage distance must be one of {sorted(DISTANCES)}")
        self.path = path
        self.dimension = dimension
        self.distance = distance
        self.vectors = vectors or VectorLayout()
        self._config = shard_config(
            dimension,
            distance,
            hnsw_m,
            hnsw_ef_construction,
            full_scan_threshold,
            self.vectors,
            indexing_threshold=indexing_threshold_kb,
        )
        self._params = self.vectors.search_params(hnsw_ef_search)
        self.optimize_on_start = optimize_on_start
        self.check_on_start = check_on_start
        self.lexical = lexical or LexicalIndex()
        self._history = SqliteHistory(path / "history.db", history_limit)
        self._threads = ShardThreads(self._history, WalSync(path), search_threads, flush_interval)
        self.guard = DiskGuard(path, disk_reserve)
        self.builder = IndexBuilder(
            path, self._threads, self._config, self.guard, build_threshold, build_check_interval
        )
        # What a read checks a vector against: its size, and unit length for cosine
        # (Qdrant keeps cosine vectors normalised).
        self._shape: dict[str, Any] = {"dimension": dimension, "unit": distance == "cosine"}

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        if not self.guard.can_open():
            free = self.guard.state().free
            raise InsufficientStorage(
                f"not enough free disk to open the store at {self.path} safely "
                f"({free // 2**20} MiB free, {OPEN_BYTES // 2**20} MiB needed): free some space",
                {"free_bytes": free},
            )
        config = self._config
        live = await asyncio.to_thread(
            prepare_live, self.path, config, self.lexical, probe=self.check_on_start
        )
        self._threads.wal = WalSync(live)
        await self._threads.open(
            lambda: open_shard(live, config, dimension=self.dimension, distance=self.distance)
        )
        await open_history(self._threads)
        shard, history = self._threads.require(), self._history
        index = self.lexical
        moved = await self._threads.on_writer(lambda: move_legacy_history(shard, history, index))
        if moved:
            _log.info("moved the history of %d memories out of their payloads", moved)
        if self.optimize_on_start:
            await self.optimize()
        self.builder.start()

    async def aclose(self) -> None:
        await self.builder.close()
        await self._threads.close()

    def disk_state(self) -> DiskState:
        """Free space under the store's folder and the reserve writes keep."""
        return self.guard.state()

    async def optimize(self) -> bool:
        """Build HNSW for unindexed segments in a child process, serving meanwhile
        (``_edge_build``); waits for a build already under way instead of starting one."""
        return (await self.build_index()).changed

    async def build_index(self) -> BuildReport:
        """:meth:`optimize`, with what the build did and how long writes waited."""
        return await self.builder.build()

    # -- writes ------------------------------------------------------------

    async def upsert(
        self, records: Sequence[MemoryRecord], *, claims: Collection[UUID] = ()
    ) -> None:
        if not records:
            return
        points = [
            qe.Point(
                id=str(r.memory.id),
                vector=point_vectors(r, self.lexical, qe.SparseVector),
                payload=record_to_payload(r),
            )
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

        await self._threads.write(op, [str(r.memory.id) for r in records])

    async def delete_user(self, user_id: str) -> int:
        live = await self.count(user_id)
        user = edge_filter([Cond("eq", "user_id", user_id)])

        def op(shard: Any, history: SqliteHistory) -> None:
            self.guard.check(delete=True)
            history.delete_user(user_id)
            shard.update(qe.UpdateOperation.delete_points_by_filter(user))

        await self._threads.write(op, [user])
        return live

    async def purge_expired(self, now: datetime) -> int:
        ids = await expired_ids(self._threads, now)
        if ids:

            def op(shard: Any, history: SqliteHistory) -> None:
                self.guard.check(delete=True)
                history.delete_memories(ids)
                shard.update(qe.UpdateOperation.delete_points(ids))

            await self._threads.write(op, ids)
        return len(ids)

    # -- reads -------------------------------------------------------------

    async def get(self, user_id: str, memory_ids: Sequence[UUID]) -> dict[UUID, MemoryRecord]:
        if not memory_ids:
            return {}
        ids = [str(i) for i in memory_ids]
        found = await self._threads.read(lambda shard: retrieve(shard, ids, NO_HISTORY, True))
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
            return await self._threads.read(lambda _: history.read(user_id, str(memory_id), _ALL))
        version = _VERSION_ONLY
        found = await self._threads.read(
            lambda shard: retrieve(shard, [str(memory_id)], version, False)
        )
        if not found or not found[0].payload or found[0].payload.get("user_id") != user_id:
            return ()
        up_to = int(found[0].payload["version"])
        return await self._threads.read(lambda _: history.read(user_id, str(memory_id), up_to))

    async def usage(self, user_id: str) -> Usage:
        return await usage(self._threads, user_id)

    async def scan(
        self, cursor: str | None = None, limit: int = 500
    ) -> tuple[list[MemoryRecord], str | None]:
        points, next_offset = await self._scroll(
            offset=cursor, limit=limit, with_payload=True, with_vector=True
        )
        # A damaged record is left out (and logged): a copy or a backup of the store
        # carries only what is sound; `verify` lists the rest.
        found = sound(points, lambda p: checked_record(p.id, p.payload, p.vector, **self._shape))
        events = await histories(self._threads, [r.memory for r in found])
        records = [dataclasses.replace(r, history=h) for r, h in zip(found, events, strict=True)]
        return records, str(next_offset) if next_offset is not None else None

    async def verify(self, progress: Callable[[int], None] | None = None) -> IntegrityReport:
        """Check every record and the history database (``domain.integrity``)."""
        history = self._history
        return await self._threads.read(
            lambda shard: verify_shard(shard, history, progress=progress, **self._shape)
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

        await self._threads.write(op, ids)

    async def owners(self, memory_ids: Sequence[UUID]) -> dict[UUID, str]:
        if not memory_ids:
            return {}
        ids = [str(i) for i in memory_ids]
        selector = qe.PayloadSelector.Include(["user_id"])
        found = await self._threads.read(lambda shard: retrieve(shard, ids, selector, False))
        return {UUID(str(r.id)): r.payload["user_id"] for r in found if r.payload}

    async def find_by_hash(
        self, pairs: Sequence[tuple[str, str]], now: datetime
    ) -> dict[tuple[str, str], Memory]:
        return await find_by_hash(self._threads, pairs, now)

    async def _scroll(self, **request: Any) -> tuple[list[Any], Any]:
        return await pages(self._threads, **request)

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
        return await list_page(self._threads, user_id, now, limit, cursor, agent_id, session_id)

    async def search(self, query: VectorQuery) -> list[SearchHit]:
        request = dense_request(query, self._params)
        points = await self._threads.read(lambda shard: resilient_query(shard, **request))
        return sound(points, lambda p: checked_hit(p, query, unit=self._shape["unit"]))

    async def search_lexical(self, query: VectorQuery) -> list[SearchHit]:
        request = lexical_request(query, self.lexical)
        if request is None:
            return []
        points = await self._threads.read(lambda shard: resilient_query(shard, **request))
        return sound(points, lambda p: checked_hit(p, query, unit=False))

    async def rank(self, query: VectorQuery, *, lexical: bool = False) -> list[tuple[UUID, float]]:
        request = (
            lexical_request(query, self.lexical) if lexical else dense_request(query, self._params)
        )
        if request is None:
            return []
        bare = {**request, "with_payload": False}
        points = await self._threads.read(lambda shard: resilient_query(shard, **bare))
        # Edge gives UUIDs: parsing a hundred again would cost as much as the query.
        ids = [p.id if isinstance(p.id, UUID) else UUID(str(p.id)) for p in points]
        return list(zip(ids, [float(p.score) for p in points], strict=True))

    def _record(self, p: Any) -> MemoryRecord:
        return checked_record(p.id, p.payload, p.vector, **self._shape)

    async def count(self, user_id: str | None = None) -> int:
        now = datetime.now(UTC)
        conds = live_conditions(user_id, now) if user_id else live_conditions("", now)[1:]
        request = qe.CountRequest(filter=edge_filter(conds))
        return int(await self._threads.read(lambda shard: shard.count(request)))

    async def info(self) -> CollectionInfo:
        shard_info = await self._threads.read(lambda shard: shard.info())
        live = live_folder(self.path)  # the shard's own config: quantization
        return describe(shard_info, self.path, self.dimension, self.distance, live)

    async def drop(self) -> None:
        await self.builder.close()
        await self._threads.close_shard(flush=False)
        await asyncio.to_thread(shutil.rmtree, self.path, True)
