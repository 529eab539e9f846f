"""The collection as operators see it: the store's configuration and counts, and an
index build started in the background."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from membank_server.domain.errors import MembankError
from membank_server.domain.model import CollectionInfo
from membank_server.services.memories import MemoryService
from membank_server.services.tasks import Background

__all__ = ["CollectionReport", "CollectionService", "IndexBuildStatus"]

_log = logging.getLogger("membank.collection")


@dataclass(frozen=True)
class IndexBuildStatus:
    """The last index build asked for through the service (none yet: all None)."""

    running: bool = False
    started_at: datetime | None = None
    finished_at: datetime | None = None
    changed: bool | None = None
    error: str | None = None


@dataclass(frozen=True)
class CollectionReport:
    info: CollectionInfo
    live_memories: int
    embedder: str
    index_build: IndexBuildStatus


class CollectionService:
    """What ``GET /v1/collection`` reports, and ``POST /v1/collection/optimize``.

    Args:
        memories: The memory service (its store, embedder and live count).
        tasks: Where an index build runs (cancelled at shutdown).
    """

    def __init__(self, memories: MemoryService, tasks: Background) -> None:
        self._memories = memories
        self._tasks = tasks
        self._build: asyncio.Task[None] | None = None
        self.build_status = IndexBuildStatus()

    async def describe(self) -> CollectionReport:
        """The store's description, the live memories and the embedding model.

        Raises:
            StorageUnavailable: the store cannot answer.
        """
        info = await self._memories.store.info()
        live = await self._memories.count()
        return CollectionReport(info, live, self._memories.embedder.model, self.build_status)

    def optimize_later(self) -> IndexBuildStatus:
        """Start building the store's pending vector indexes in the background (the
        embedded store builds in a child process and serves meanwhile), unless a build
        asked for here is running; its status either way."""
        if self._build is None or self._build.done():
            self.build_status = IndexBuildStatus(running=True, started_at=datetime.now(UTC))
            self._build = self._tasks.spawn(self._optimize(), "index build")
        return self.build_status

    async def _optimize(self) -> None:
        status = self.build_status
        try:
            changed = await self._memories.store.optimize()
        except MembankError as exc:
            _log.error("index build failed: %s", exc.message)
            status = replace(status, error=exc.message)
        else:
            status = replace(status, changed=changed)
        self.build_status = replace(status, running=False, finished_at=datetime.now(UTC))
