"""Scheduled upkeep of one process: purging expired memories, following data keys."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from membank_server.services.memories import MemoryService
from membank_server.services.tasks import Background

if TYPE_CHECKING:
    from membank_server.services.rotation import DataKeyRotation

__all__ = ["KEY_RELOAD_SECONDS", "Upkeep"]

#: How often a server re-reads its data-key file (``membank keys rotate-data-key``
#: waits this long after adding a key, so every instance seals with it first).
KEY_RELOAD_SECONDS = 5.0

_log = logging.getLogger("membank.runtime")


class Upkeep:
    """Runs in the background while the process serves.

    Every ``purge_interval`` seconds expired memories are purged and the live count
    refreshed; with field encryption, the data-key ring is re-read every
    ``KEY_RELOAD_SECONDS``: after another instance (or ``membank keys``) made a new
    key active, new writes here use it too. A failed round is logged and retried.
    """

    def __init__(
        self,
        memories: MemoryService,
        tasks: Background,
        *,
        purge_interval: float,
        rotation: DataKeyRotation | None = None,
    ) -> None:
        self._memories = memories
        self._tasks = tasks
        self._purge_interval = purge_interval
        self._rotation = rotation

    def start(self) -> None:
        self._tasks.every(self._purge_interval, self._purge, "upkeep")
        if self._rotation is not None:
            self._tasks.every(
                KEY_RELOAD_SECONDS,
                self._reload_keys,
                "reloading the data keys (the loaded ones stay in use)",
                first=KEY_RELOAD_SECONDS,
            )

    async def _purge(self) -> None:
        purged = await self._memories.purge_expired()
        if purged:
            _log.info("purged %d expired memories", purged)
        await self._memories.count()

    async def _reload_keys(self) -> None:
        assert self._rotation is not None
        await asyncio.to_thread(self._rotation.store.reload_keys)
