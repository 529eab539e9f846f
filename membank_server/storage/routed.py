"""RoutedStore: exact look-ups from the record store, vector search by collection size.

The decision flow: get, list, history and every write go to the hybrid store (the
record store first); a vector search goes to the record store's own vector index
(pgvector) while the collection holds fewer than ``threshold`` live memories, and
to the vector engine (Qdrant) from there on, where HNSW at scale pays off. The
live count is re-read every ``count_interval`` seconds, not per query. When the
chosen store cannot answer, the other one does and the read is reported as a
fallback.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from membank_server.domain.errors import StorageUnavailable
from membank_server.domain.integrity import IntegrityReport
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
from membank_server.domain.ports import MemoryStore
from membank_server.domain.routing import note_backend
from membank_server.storage.hybrid import HybridStore

__all__ = ["RoutedStore"]
_T = TypeVar("_T")


class RoutedStore:
    """A :class:`~membank_server.domain.ports.MemoryStore` routing reads over a HybridStore.

    Args:
        hybrid: Writes and exact look-ups (its primary is the record store).
        threshold: Live memories from which vector search goes to the secondary.
        count_interval: Seconds between re-reads of the live count.
        on_event: Told ``route`` (with the chosen backend) and ``fallback``.
    """

    backend = "hybrid"

    def __init__(
        self,
        hybrid: HybridStore,
        *,
        threshold: int = 1_000_000,
        count_interval: float = 10.0,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.hybrid = hybrid
        self.threshold = threshold
        self._interval = count_interval
        self._on_event = on_event or (lambda kind, fields: None)
        self._clock = clock
        self._count: int | None = None
        self._counted_at = 0.0

    async def start(self) -> None:
        await self.hybrid.start()

    async def aclose(self) -> None:
        await self.hybrid.aclose()

    async def search(self, query: VectorQuery) -> list[SearchHit]:
        return await self._routed("search", lambda s: s.search(query))

    async def search_lexical(self, query: VectorQuery) -> list[SearchHit]:
        return await self._routed("lexical search", lambda s: s.search_lexical(query))

    async def rank(self, query: VectorQuery, *, lexical: bool = False) -> list[tuple[UUID, float]]:
        return await self._routed("rank", lambda s: s.rank(query, lexical=lexical))

    async def _routed(self, kind: str, read: Callable[[MemoryStore], Awaitable[_T]]) -> _T:
        primary, secondary = self.hybrid.primary, self.hybrid.secondary
        small = await self._live_count() < self.threshold
        chosen, other = (primary, secondary) if small else (secondary, primary)
        self._on_event("route", {"backend": chosen.backend, "kind": kind})
        try:
            hits = await read(chosen)
            note_backend(chosen.backend)
            return hits
        except StorageUnavailable as exc:
            self._on_event(
                "fallback", {"from": chosen.backend, "to": other.backend, "error": exc.message}
            )
            hits = await read(other)
            note_backend(other.backend)
            return hits

    async def _live_count(self) -> int:
        now = self._clock()
        if self._count is None or now - self._counted_at >= self._interval:
            try:
                self._count = await self.hybrid.primary.count()
            except StorageUnavailable:
                self._count = await self.hybrid.secondary.count()
            self._counted_at = now
        return self._count

    async def _exact(self) -> None:
        note_backend(self.hybrid.primary.backend)
        self._on_event("route", {"backend": self.hybrid.primary.backend, "kind": "exact"})

    async def get(self, user_id: str, memory_ids: Sequence[UUID]) -> dict[UUID, MemoryRecord]:
        await self._exact()
        return await self.hybrid.get(user_id, memory_ids)

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
        await self._exact()
        return await self.hybrid.list_page(
            user_id,
            now=now,
            limit=limit,
            cursor=cursor,
            agent_id=agent_id,
            session_id=session_id,
        )

    async def owners(self, memory_ids: Sequence[UUID]) -> dict[UUID, str]:
        return await self.hybrid.owners(memory_ids)

    async def find_by_hash(
        self, pairs: Sequence[tuple[str, str]], now: datetime
    ) -> dict[tuple[str, str], Memory]:
        return await self.hybrid.find_by_hash(pairs, now)

    async def upsert(
        self, records: Sequence[MemoryRecord], *, claims: Collection[UUID] = ()
    ) -> None:
        await self.hybrid.upsert(records, claims=claims)

    async def history(
        self, user_id: str, memory_id: UUID, *, all_versions: bool = False
    ) -> tuple[HistoryEvent, ...]:
        await self._exact()
        return await self.hybrid.history(user_id, memory_id, all_versions=all_versions)

    async def usage(self, user_id: str) -> Usage:
        return await self.hybrid.usage(user_id)

    async def verify(self, progress: Callable[[int], None] | None = None) -> IntegrityReport:
        return await self.hybrid.verify(progress)

    async def discard(self, memory_ids: Sequence[UUID]) -> None:
        await self.hybrid.discard(memory_ids)

    async def delete_user(self, user_id: str) -> int:
        return await self.hybrid.delete_user(user_id)

    async def purge_expired(self, now: datetime) -> int:
        return await self.hybrid.purge_expired(now)

    async def count(self, user_id: str | None = None) -> int:
        return await self.hybrid.count(user_id)

    async def info(self) -> CollectionInfo:
        return await self.hybrid.info()

    async def drop(self) -> None:
        await self.hybrid.drop()

    async def optimize(self) -> bool:
        return await self.hybrid.optimize()

    async def scan(
        self, cursor: str | None = None, limit: int = 500
    ) -> tuple[list[MemoryRecord], str | None]:
        return await self.hybrid.primary.scan(cursor, limit)
