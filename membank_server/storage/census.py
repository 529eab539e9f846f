"""Who holds what in a store: users with a live memory, the largest tenants, bytes on disk.

Not part of the store port (no request needs it): the sampler asks every few
minutes through :class:`~membank_server.domain.observe.StoreCensus`, which
``bootstrap`` builds for the configured store. The embedded store counts with a
facet over its ``user_id`` index and its folder's allocated blocks; pgvector with
one ``GROUP BY`` and the schema's relation sizes (``census_pg``, imported only for
pgvector: a store's driver costs memory in every server that does not use it).
Stores without a way to tell (a Qdrant server) answer zeros, and the sampler says
so once.
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from membank_server.storage._edge_ops import edge_filter
from membank_server.storage._payload import live_conditions
from membank_server.storage.edge import EdgeStore

__all__ = ["EdgeCensus", "NoCensus", "folder_bytes"]

#: Most distinct users a facet counts (a bound on the work of one census).
_MOST_USERS = 10_000_000


def folder_bytes(path: Path) -> int:
    """Allocated bytes under ``path``, as ``du`` counts them (sparse files count what is used)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except FileNotFoundError:
                continue  # a temporary file removed while we walked
    return total


class EdgeCensus:
    def __init__(self, store: EdgeStore) -> None:
        self._store = store
        self.known = True

    async def tenants(self, top: int) -> tuple[int, list[tuple[str, int]]]:
        conds = live_conditions("", datetime.now(UTC))[1:]
        request = qe.FacetRequest(
            key="user_id", limit=_MOST_USERS, exact=True, filter=edge_filter(conds)
        )
        found: Any = await self._store._threads.read(lambda shard: shard.facet(request))
        counts = sorted(((str(h.value), int(h.count)) for h in found.hits), key=lambda x: -x[1])
        return len(counts), counts[:top]

    async def disk_bytes(self) -> int:
        return await asyncio.to_thread(folder_bytes, self._store.path)


class NoCensus:
    """A store that cannot tell (a Qdrant server): zeros."""

    known = False

    async def tenants(self, top: int) -> tuple[int, list[tuple[str, int]]]:
        return 0, []

    async def disk_bytes(self) -> int:
        return 0
