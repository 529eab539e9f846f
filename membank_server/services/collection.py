"""The collection as operators see it: the store's configuration and counts."""

from __future__ import annotations

from dataclasses import dataclass

from membank_server.domain.model import CollectionInfo
from membank_server.services.memories import MemoryService

__all__ = ["CollectionReport", "CollectionService"]


@dataclass(frozen=True)
class CollectionReport:
    info: CollectionInfo
    live_memories: int
    embedder: str


class CollectionService:
    """What ``GET /v1/collection`` reports.

    Args:
        memories: The memory service (its store, embedder and live count).
    """

    def __init__(self, memories: MemoryService) -> None:
        self._memories = memories

    async def describe(self) -> CollectionReport:
        """The store's description, the live memories and the embedding model.

        Raises:
            StorageUnavailable: the store cannot answer.
        """
        info = await self._memories.store.info()
        live = await self._memories.count()
        return CollectionReport(info, live, self._memories.embedder.model)
