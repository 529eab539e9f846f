"""The census of a pgvector store: one ``GROUP BY`` and the schema's relation sizes."""

from __future__ import annotations

from datetime import UTC, datetime

from membank_server.storage._pg_rows import LIVE
from membank_server.storage.pgvector import PgVectorStore

__all__ = ["PgCensus"]


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
