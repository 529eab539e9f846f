"""QdrantStore: memories in a Qdrant server or cluster, through ``qdrant-client``.

Points use the payload layout of :mod:`membank_server.storage._payload`, the one
``EdgeStore`` writes, so a collection can move between the two backends.

Every call passes one boundary (``_qdrant_client``) that retries transient
failures and translates driver errors. Writes are idempotent (whole points,
deletes by filter), so a retry cannot apply anything twice.

``location=":memory:"`` or ``path=...`` select qdrant-client's local mode: an
in-process, brute-force stand-in for the server (tests, tiny setups) that runs
on the event loop and has no HNSW, quantization or payload indexes.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any
from uuid import UUID

from qdrant_client import AsyncQdrantClient, models

from membank_server.domain.errors import ConfigError, Conflict
from membank_server.domain.integrity import IntegrityReport
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
from membank_server.lexical import LexicalIndex
from membank_server.storage._checked import checked_record
from membank_server.storage._lexical import point_vectors
from membank_server.storage._payload import (
    Cond,
    live_conditions,
    record_to_payload,
    search_conditions,
)
from membank_server.storage._qdrant_client import QdrantConnection
from membank_server.storage._qdrant_collection import (
    DISTANCES,
    QUANTIZATIONS,
    Layout,
    qdrant_filter,
)
from membank_server.storage._qdrant_history import QdrantHistory
from membank_server.storage._qdrant_ops import move_legacy_history, verify_collection
from membank_server.storage._qdrant_scans import (
    WITHOUT_HISTORY,
    expired_ids,
    find_by_hash,
    memories_page,
    records_page,
    usage,
)
from membank_server.storage._qdrant_search import dense_search, lexical_search, ranks

__all__ = ["QdrantStore"]

_Client = AsyncQdrantClient


def _sparse(indices: list[int], values: list[float]) -> models.SparseVector:
    return models.SparseVector(indices=indices, values=values)


class QdrantStore:
    """A :class:`~membank_server.domain.ports.MemoryStore` on a Qdrant server or cluster.

    Args:
        collection: Collection name.
        dimension: Vector size; must match an existing collection.
        distance: ``cosine``, ``dot`` or ``euclid``.
        url: Server URL, e.g. ``http://qdrant:6333``.
        api_key: Server API key; never written into a message.
        location: ``":memory:"`` for qdrant-client's in-process local mode.
        path: A folder for qdrant-client's on-disk local mode.
        timeout: Seconds per request (the client rounds it up to whole seconds).
        retries: Attempts in all for a request that fails transiently.
        batch_size: Points per upsert request.
        hnsw_m: HNSW graph degree.
        hnsw_ef_construction: HNSW build-time beam (ef_construct).
        hnsw_ef_search: Search-time beam (hnsw_ef).
        quantization: ``None``, ``"scalar"`` (int8) or ``"binary"``.
        on_disk: Keep vectors, HNSW graph and payload on disk rather than in RAM.
        shard_number: Shards of a new collection (cluster).
        replication_factor: Copies of each shard (cluster).
        write_consistency_factor: Replicas that must confirm a write (cluster).
        prefer_grpc: Talk gRPC rather than REST to the server.
        history_limit: Versions of history kept per memory (None: all), in the
            collection ``<collection>_history``.
        lexical: How records are indexed for lexical search (``_lexical``).
    """

    backend = "qdrant"

    def __init__(
        self,
        *,
        collection: str,
        dimension: int,
        distance: str = "cosine",
        url: str | None = None,
        api_key: str | None = None,
        location: str | None = None,
        path: str | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        batch_size: int = 256,
        hnsw_m: int = 16,
        hnsw_ef_construction: int = 100,
        hnsw_ef_search: int = 128,
        quantization: str | None = None,
        on_disk: bool = False,
        shard_number: int | None = None,
        replication_factor: int | None = None,
        write_consistency_factor: int | None = None,
        prefer_grpc: bool = False,
        history_limit: int | None = 100,
        lexical: LexicalIndex | None = None,
    ) -> None:
        if distance not in DISTANCES:
            raise ConfigError(f"storage distance must be one of {sorted(DISTANCES)}")
        if quantization is not None and quantization not in QUANTIZATIONS:
            raise ConfigError(f"qdrant quantization must be one of {sorted(QUANTIZATIONS)}")
        if sum(x is not None for x in (url, location, path)) > 1:
            raise ConfigError("give the qdrant store one of url, location or path")
        if retries < 1 or batch_size < 1:
            raise ConfigError("qdrant retries and batch_size must be at least 1")
        self.collection = collection
        self.lexical = lexical or LexicalIndex()
        self.dimension = dimension
        self.distance = distance
        # The rule qdrant-client itself applies to pick its in-process backend.
        self.local = location == ":memory:" or path is not None
        self._connection = QdrantConnection(
            collection,
            url=url,
            api_key=api_key,
            location=location,
            path=path,
            timeout=timeout,
            prefer_grpc=prefer_grpc,
            retries=retries,
        )
        self._call = self._connection.call
        self._batch_size = batch_size
        self._layout = Layout(
            collection,
            dimension,
            distance,
            self.local,
            on_disk,
            {
                "hnsw_config": models.HnswConfigDiff(
                    m=hnsw_m, ef_construct=hnsw_ef_construction, on_disk=on_disk
                ),
                "quantization_config": QUANTIZATIONS[quantization] if quantization else None,
                "on_disk_payload": on_disk,
                "shard_number": shard_number,
                "replication_factor": replication_factor,
                "write_consistency_factor": write_consistency_factor,
            },
        )
        # Local mode is exact anyway, and warns that search params do nothing.
        self._search_params = None if self.local else models.SearchParams(hnsw_ef=hnsw_ef_search)
        self._history = QdrantHistory(
            self._call, f"{collection}_history", history_limit, batch_size
        )
        self._shape: dict[str, Any] = {"dimension": dimension, "unit": distance == "cosine"}

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        self._connection.open()
        try:
            await self._layout.ensure(self._call)
            await self._history.ensure(self.local)
            await move_legacy_history(self._call, self.collection, self._history)
        except BaseException:
            # Local mode locks its folder until the client is closed.
            await self.aclose()
            raise

    async def aclose(self) -> None:
        await self._connection.close()

    # -- plumbing ----------------------------------------------------------

    async def _count(self, conds: Sequence[Cond]) -> int:
        flt = qdrant_filter(conds)
        result = await self._call(
            "count", lambda c: c.count(self.collection, count_filter=flt, exact=True)
        )
        return int(result.count)

    async def _delete(self, what: str, conds: Sequence[Cond]) -> None:
        selector = models.FilterSelector(filter=qdrant_filter(conds))
        await self._call(
            what, lambda c: c.delete(self.collection, points_selector=selector, wait=True)
        )

    async def _scroll(
        self, what: str, flt: models.Filter, limit: int, offset: str | None
    ) -> tuple[list[Memory], str | None]:
        return await memories_page(self._call, self.collection, what, flt, limit, offset)

    # -- writes ------------------------------------------------------------

    async def upsert(
        self, records: Sequence[MemoryRecord], *, claims: Collection[UUID] = ()
    ) -> None:
        if not records:
            return
        # History first: its events show only up to the record's version (_qdrant_history).
        await self._history.add([(r.memory, h) for r in records for h in r.history])
        by_user: dict[str, list[models.PointStruct]] = {}
        for r in records:
            vector: Any = list(r.vector)
            if self._layout.lexical[0]:
                vector = point_vectors(r, self.lexical, _sparse)
            by_user.setdefault(r.memory.user_id, []).append(
                models.PointStruct(id=str(r.memory.id), vector=vector, payload=record_to_payload(r))
            )
        for user_id, points in by_user.items():
            # Conditional: an existing point of another user is left as it is, atomically
            # in the server, so no write here can overwrite another user's memory.
            mine = qdrant_filter([Cond("eq", "user_id", user_id)])
            for start in range(0, len(points), self._batch_size):
                await self._call(
                    "upsert",
                    partial(
                        _Client.upsert,
                        collection_name=self.collection,
                        points=points[start : start + self._batch_size],
                        update_filter=mine,
                        wait=True,
                    ),
                )
        wanted = {r.memory.id: r.memory.user_id for r in records if r.memory.id in claims}
        if wanted:
            owners = await self.owners(list(wanted))
            taken = sorted(str(i) for i, user in owners.items() if user != wanted[i])
            if taken:
                raise Conflict("this id belongs to another memory", {"field": "id", "ids": taken})

    async def delete_user(self, user_id: str) -> int:
        live = await self.count(user_id)
        await self._delete("delete a user", [Cond("eq", "user_id", user_id)])
        await self._history.delete_user(user_id)
        return live

    async def purge_expired(self, now: datetime) -> int:
        ids = await expired_ids(self._call, self.collection, now)
        if ids:
            selector = models.PointIdsList(points=list(ids))
            await self._call(
                "purge expired memories",
                lambda c: c.delete(self.collection, points_selector=selector, wait=True),
            )
            await self._history.delete_memories(ids)
        return len(ids)

    # -- reads -------------------------------------------------------------

    async def get(self, user_id: str, memory_ids: Sequence[UUID]) -> dict[UUID, MemoryRecord]:
        if not memory_ids:
            return {}
        ids: list[models.ExtendedPointId] = [str(i) for i in memory_ids]
        found = await self._call(
            "get",
            lambda c: c.retrieve(
                self.collection, ids, with_payload=WITHOUT_HISTORY, with_vectors=True
            ),
        )
        out: dict[UUID, MemoryRecord] = {}
        for rec in found:
            if rec.payload and rec.payload.get("user_id") == user_id:
                r = checked_record(str(rec.id), rec.payload, rec.vector, **self._shape)
                out[r.memory.id] = r
        return out

    async def history(
        self, user_id: str, memory_id: UUID, *, all_versions: bool = False
    ) -> tuple[HistoryEvent, ...]:
        if all_versions:
            return await self._history.read(user_id, str(memory_id), 2**62)
        found = await self._call(
            "read a version",
            lambda c: c.retrieve(
                self.collection, [str(memory_id)], with_payload=["user_id", "version"]
            ),
        )
        if not found or not found[0].payload or found[0].payload.get("user_id") != user_id:
            return ()
        return await self._history.read(user_id, str(memory_id), int(found[0].payload["version"]))

    async def usage(self, user_id: str) -> Usage:
        return await usage(self._call, self.collection, user_id)

    async def scan(
        self, cursor: str | None = None, limit: int = 500
    ) -> tuple[list[MemoryRecord], str | None]:
        return await records_page(
            self._call, self.collection, self._history, cursor, limit, **self._shape
        )

    async def owners(self, memory_ids: Sequence[UUID]) -> dict[UUID, str]:
        if not memory_ids:
            return {}
        ids: list[models.ExtendedPointId] = [str(i) for i in memory_ids]
        found = await self._call(
            "look up owners", lambda c: c.retrieve(self.collection, ids, with_payload=["user_id"])
        )
        return {UUID(str(r.id)): str(r.payload["user_id"]) for r in found if r.payload}

    async def find_by_hash(
        self, pairs: Sequence[tuple[str, str]], now: datetime
    ) -> dict[tuple[str, str], Memory]:
        return await find_by_hash(self._call, self.collection, pairs, now)

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
        by = SearchFilter(agent_id=agent_id, session_id=session_id)
        conds = search_conditions(user_id, now, by)
        memories, next_cursor = await self._scroll("list", qdrant_filter(conds), limit, cursor)
        memories = [m for m in memories if m.user_id == user_id and not m.is_expired(now)]
        return Page(items=tuple(memories), next_cursor=next_cursor)

    async def search(self, query: VectorQuery) -> list[SearchHit]:
        return await dense_search(
            self._call, self.collection, query, self._search_params, self._shape["unit"]
        )

    async def search_lexical(self, query: VectorQuery) -> list[SearchHit]:
        if not self._layout.lexical[0]:
            return []
        return await lexical_search(self._call, self.collection, query, self.lexical)

    async def rank(self, query: VectorQuery, *, lexical: bool = False) -> list[tuple[UUID, float]]:
        if lexical and not self._layout.lexical[0]:
            return []
        index = self.lexical if lexical else None
        return await ranks(self._call, self.collection, query, self._search_params, index)

    async def verify(self, progress: Callable[[int], None] | None = None) -> IntegrityReport:
        """Check every record, and list the memories whose history outlived them."""
        return await verify_collection(
            self._call, self.collection, self._history, progress=progress, **self._shape
        )

    async def discard(self, memory_ids: Sequence[UUID]) -> None:
        """Remove records and their history by id, whatever state they are in (repair)."""
        ids: list[models.ExtendedPointId] = [str(i) for i in memory_ids]
        if not ids:
            return
        selector = models.PointIdsList(points=ids)
        await self._call(
            "discard", lambda c: c.delete(self.collection, points_selector=selector, wait=True)
        )
        await self._history.delete_memories([str(i) for i in ids])

    async def count(self, user_id: str | None = None) -> int:
        conds = live_conditions(user_id or "", datetime.now(UTC))
        if user_id is None:
            conds = [c for c in conds if c.key != "user_id"]
        return await self._count(conds)

    async def info(self) -> CollectionInfo:
        info = await self._call("read the collection", lambda c: c.get_collection(self.collection))
        return self._layout.describe(info)

    async def optimize(self) -> bool:
        """Nothing to do: a Qdrant server builds its indexes itself, in the background."""
        return False

    async def drop(self) -> None:
        await self._call("drop the collection", lambda c: c.delete_collection(self.collection))
        await self._history.drop()
