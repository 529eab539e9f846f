"""Readiness: the store open, the embedder loaded, warmup settled; and writes allowed."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from membank_server.domain.errors import InsufficientStorage, MembankError
from membank_server.domain.ports import Embedder, MemoryStore, SpaceAware
from membank_server.services.tasks import Background
from membank_server.services.warmup import WarmupService

__all__ = ["STORE_RETRY_SECONDS", "Readiness", "ReadyReport"]

#: How often a store that a full disk kept closed is tried again.
STORE_RETRY_SECONDS = 5.0

_log = logging.getLogger("membank.runtime")


@dataclass(frozen=True)
class ReadyReport:
    """What ``/ready`` says: ready or not, each part, and why not."""

    ready: bool
    storage: bool
    embedder: bool
    #: Why writes are refused (a nearly full disk), or None.
    writes: str | None
    #: Why not ready ("warming up" when only warmup is left).
    reason: str | None


class Readiness:
    """Opens the store and loads the embedder for a process, and says how far it got.

    The store opens at start; a disk too full to open it safely does not stop the
    process: it runs without the store (``/ready`` says why) and opens it once space
    is freed. The embedder loads in the background, so ``/health`` answers at once;
    once it is loaded, warmup begins (an eager round holds readiness back).

    Args:
        store: The memory store.
        embedder: The embedding model.
        warmup: Started once the embedder is loaded.
        tasks: Where background loading runs.
    """

    def __init__(
        self, store: MemoryStore, embedder: Embedder, warmup: WarmupService, tasks: Background
    ) -> None:
        self._store = store
        self._embedder = embedder
        self._warmup = warmup
        self._tasks = tasks
        self._store_open = False
        self._store_error: str | None = None
        self._embedder_ready = False
        self._embedder_error: str | None = None

    @property
    def ready(self) -> bool:
        return self._store_open and self._embedder_ready and self._warmup.settled

    def report(self) -> ReadyReport:
        reason = None
        if not self.ready:
            reason = self._store_error or self._embedder_error or "warming up"
        return ReadyReport(
            ready=self.ready,
            storage=self._store_open,
            embedder=self._embedder_ready,
            writes=self.writes(),
            reason=reason,
        )

    def writes(self) -> str | None:
        """Why writes are refused right now (a nearly full disk), or None."""
        if not self._store_open or not isinstance(self._store, SpaceAware):
            return None
        disk = self._store.disk_state()
        if disk.writable:
            return None
        return f"refused: {disk.free // 2**20} MiB free, {disk.reserve // 2**20} MiB reserve"

    async def open_store(self) -> None:
        """Open the store, or (disk full) keep trying in the background."""
        try:
            await self._store.start()
        except InsufficientStorage as exc:
            self._store_error = exc.message
            _log.error("store not opened: %s", exc.message)
            self._tasks.spawn(self._open_when_space(), "opening the store")
            return
        self._store_open = True

    async def _open_when_space(self) -> None:
        while not self._store_open:
            await asyncio.sleep(STORE_RETRY_SECONDS)
            try:
                await self._store.start()
            except InsufficientStorage as exc:
                self._store_error = exc.message
                continue
            self._store_open, self._store_error = True, None
            _log.warning("store opened: disk space was freed")

    async def close_store(self) -> None:
        if self._store_open:
            await self._store.aclose()

    def load_embedder(self) -> None:
        """Load the embedder in the background, then start warmup."""
        self._tasks.spawn(self._load_embedder(), "loading the embedder")

    async def _load_embedder(self) -> None:
        try:
            await self._embedder.start()
        except MembankError as exc:
            self._embedder_error = exc.message
            _log.error("embedder failed to start: %s", exc.message)
            return
        self._embedder_ready = True
        _log.info("embedder ready: %s (%d-d)", self._embedder.model, self._embedder.dimension)
        await self._warmup.start()
