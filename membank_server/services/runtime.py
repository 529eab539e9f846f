"""Runtime: the started services of one process, their readiness and upkeep."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from membank_server.domain.errors import EmbedderUnavailable, MembankError
from membank_server.domain.ports import Embedder, MemoryStore
from membank_server.services.memories import MemoryService

__all__ = ["Runtime"]

_log = logging.getLogger("membank.runtime")


@dataclass
class Runtime:
    """Everything a server process needs, built by ``bootstrap.build_runtime``.

    ``start()`` opens the store (a failure there stops the process) and loads the
    embedder in the background, so ``/health`` answers at once and ``/ready``
    turns 200 when both are usable. A purge of expired memories runs every
    ``purge_interval`` seconds.
    """

    store: MemoryStore
    embedder: Embedder
    memories: MemoryService
    purge_interval: float = 60.0
    store_ready: bool = False
    embedder_ready: bool = False
    embedder_error: str | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return self.store_ready and self.embedder_ready

    async def start(self, *, background: bool = True) -> None:
        await self.store.start()
        self.store_ready = True
        if background:
            self._tasks.append(asyncio.create_task(self._load_embedder()))
            self._tasks.append(asyncio.create_task(self._upkeep()))
        else:
            await self._load_embedder()
            if self.embedder_error:
                raise EmbedderUnavailable(self.embedder_error)

    async def _load_embedder(self) -> None:
        try:
            await self.embedder.start()
        except MembankError as exc:
            self.embedder_error = exc.message
            _log.error("embedder failed to start: %s", exc.message)
            return
        self.embedder_ready = True
        _log.info("embedder ready: %s (%d-d)", self.embedder.model, self.embedder.dimension)

    async def _upkeep(self) -> None:
        while True:
            try:
                purged = await self.memories.purge_expired()
                if purged:
                    _log.info("purged %d expired memories", purged)
                await self.memories.count()
            except MembankError as exc:
                _log.warning("upkeep failed, will retry: %s", exc.message)
            await asyncio.sleep(self.purge_interval)

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.embedder.aclose()
        if self.memories.recall_cache is not None:
            await self.memories.recall_cache.aclose()
        await self.store.aclose()
