"""Who holds what in a store: users with a live memory, the largest tenants, bytes on disk.

Not part of the store port (no request needs it): the sampler asks every few
minutes through :class:`~membank_server.domain.observe.StoreCensus`, which
``bootstrap`` builds for the configured store. The embedded store counts with a
facet over its ``user_id`` index and its folder's allocated blocks; pgvector with
one ``GROUP BY`` and the schema's relation sizes. Stores without a way to tell
(a Qdrant server) answer zeros, and the sampler says so once.
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
from membank_server.storage._pg_rows import LIVE
from membank_server.storage.edge import EdgeStore
from membank_server.storage.pgvector import PgVectorStore

__all__ = ["EdgeCensus", "NoCensus", "PgCensus", "folder_bytes"]

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


class PgCensus:
    def __init__(self, store: PgVectorStore) -> None:
        self._store = store
        self.known = True

    async def tenants(self, top: int) -> tuple[int, list[tuple[str, int]]]:
        s = self._store
        sql = (
            f"SELECT m.user_id, count(*) AS n, count(*) OVER () AS users FROM {s._t} m"
            f" WHERE $1::int > 0 AND {LIVE} GROUP BY m.user_id ORDER BY n DESC LIMIT $1"
        )
        now = datetime.now(UTC)
        rows = await s._read("count tenants", lambda c: c.fetch(sql, top, now))
        users = int(rows[0]["users"]) if rows else 0
        return users, [(str(r["user_id"]), int(r["n"])) for r in rows]

    async def disk_bytes(self) -> int:
        sql = (
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = $1 AND c.relkind IN ('r', 'm')"
        )
        schema = self._store.names.schema
        return int(await self._store._read("measure the schema", lambda c: c.fetchval(sql, schema)))


class NoCensus:
    """A store that cannot tell (a Qdrant server): zeros."""

    known = False

    async def tenants(self, top: int) -> tuple[int, list[tuple[str, int]]]:
        return 0, []

    async def disk_bytes(self) -> int:
        return 0
