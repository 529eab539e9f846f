"""The memories component's tables in PostgreSQL: where they live, their migrations, the
check at start.

``<prefix>`` holds one row per record, tombstones included, with its vector;
``<prefix>_history`` one row per history event. Migrations are those of the
component ``memories:<prefix>`` (see :mod:`membank_server.pg`); the HNSW
``m``/``ef_construction`` and the distance are fixed when the index is made, and
:func:`check_memories` refuses a table of another dimension or distance.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from membank_server.domain.errors import ConfigError
from membank_server.pg import Migration, applied_versions, qualify, quote_ident, vector_schema

__all__ = ["DISTANCES", "SETUP", "PgNames", "check_memories", "memories_migrations"]

#: Per distance: the HNSW operator class, the SQL operator, and the score of a distance.
#: Cosine scores ``1 - distance`` (the similarity), dot the inner product (``<#>`` is
#: its negative); euclid ``1 / (1 + distance)``, so that higher is better.
DISTANCES: dict[str, tuple[str, str, Callable[[float], float]]] = {
    "cosine": ("vector_cosine_ops", "<=>", lambda d: 1.0 - d),
    "dot": ("vector_ip_ops", "<#>", lambda d: -d),
    "euclid": ("vector_l2_ops", "<->", lambda d: 1.0 / (1.0 + d)),
}
#: What to do when the tables are missing, in every message that says so.
SETUP = "run `membank collection setup`, or start with migrate on"


class PgNames:
    """Where one membank collection lives: a schema and a table prefix."""

    def __init__(self, schema: str, prefix: str) -> None:
        self.schema, self.prefix = schema, prefix
        self.history, self.outbox = f"{prefix}_history", f"{prefix}_outbox"
        self.hnsw_index = f"{prefix}_embedding_hnsw"

    def q(self, name: str) -> str:
        """A name of this schema, qualified and quoted."""
        return qualify(self.schema, name)


def memories_migrations(
    names: PgNames, dimension: int, opclass: str, m: int, ef_construction: int
) -> Callable[[str | None], list[Migration]]:
    def build(ext: str | None) -> list[Migration]:
        if ext is None:
            raise ConfigError("the vector extension is not installed")
        t, h, p = names.q(names.prefix), names.q(names.history), names.prefix
        return [
            Migration(
                1,
                (
                    f"CREATE TABLE {t} (id uuid PRIMARY KEY, user_id text NOT NULL,"
                    " agent_id text, session_id text, content text NOT NULL,"
                    " metadata jsonb NOT NULL, created_at timestamptz NOT NULL,"
                    " updated_at timestamptz NOT NULL, expires_at timestamptz,"
                    " version int NOT NULL, content_hash text NOT NULL, state text NOT NULL"
                    " CHECK (state IN ('live', 'deleted')), deleted_at timestamptz,"
                    f" idempotency text, embedding {quote_ident(ext)}.vector({dimension}))",
                    f"CREATE INDEX {quote_ident(p + '_user_idx')} ON {t} (user_id, id)",
                    f"CREATE INDEX {quote_ident(p + '_live_hash_idx')} ON {t}"
                    " (user_id, content_hash) WHERE state = 'live'",
                    f"CREATE INDEX {quote_ident(p + '_expires_idx')} ON {t} (expires_at)"
                    " WHERE expires_at IS NOT NULL",
                    f"CREATE INDEX {quote_ident(names.hnsw_index)} ON {t} USING hnsw"
                    f" (embedding {quote_ident(ext)}.{opclass})"
                    f" WITH (m = {m}, ef_construction = {ef_construction})",
                    # Keyed by position: a DELETE event may repeat the last version.
                    f"CREATE TABLE {h} (memory_id uuid NOT NULL, seq int NOT NULL,"
                    " user_id text NOT NULL, version int NOT NULL, event text NOT NULL,"
                    " content text NOT NULL, metadata jsonb NOT NULL, at timestamptz NOT NULL,"
                    " PRIMARY KEY (memory_id, seq))",
                    f"CREATE INDEX {quote_ident(p + '_history_user_idx')} ON {h} (user_id)",
                ),
            ),
            # History kept apart and appended: an event is keyed by what it is, so a
            # write adds its events without reading or renumbering the earlier ones.
            Migration(
                2,
                (
                    f"DELETE FROM {h} a USING {h} b WHERE a.memory_id = b.memory_id"
                    " AND a.version = b.version AND a.event = b.event AND a.seq < b.seq",
                    f"ALTER TABLE {h} DROP COLUMN seq",
                    f"ALTER TABLE {h} ADD PRIMARY KEY (memory_id, version, event)",
                ),
            ),
            # Time-aware memories, and the lexical index (``_pg_lexical``): rows of
            # earlier versions get their terms when the store starts.
            Migration(
                3,
                (
                    f"ALTER TABLE {t} ADD COLUMN occurred_at timestamptz,"
                    " ADD COLUMN lexemes tsvector",
                    f"CREATE INDEX {quote_ident(p + '_lexemes_gin')} ON {t} USING gin (lexemes)",
                    f"CREATE INDEX {quote_ident(p + '_occurred_idx')} ON {t} (user_id, occurred_at)"
                    " WHERE occurred_at IS NOT NULL",
                ),
            ),
        ]

    return build


async def check_memories(
    conn: Any, names: PgNames, component: str, dimension: int, opclass: str, where: str
) -> str:
    """Refuse missing tables or ones of another dimension or distance; the vector schema."""
    table = names.q(names.prefix)
    ext = await vector_schema(conn)
    if 1 not in await applied_versions(conn, names.schema, component) or ext is None:
        raise ConfigError(f"{where} has no membank table {table}: {SETUP}")
    size = await conn.fetchval(
        "SELECT atttypmod FROM pg_attribute WHERE attrelid = to_regclass($1)"
        " AND attname = 'embedding'",
        table,
    )
    if size != dimension:
        raise ConfigError(
            f"table {table} holds vectors of dimension {size}, "
            f"but storage is set to dimension {dimension}"
        )
    found = await conn.fetchval(
        "SELECT o.opcname FROM pg_index i JOIN pg_opclass o ON o.oid = i.indclass[0]"
        " WHERE i.indexrelid = to_regclass($1)",
        names.q(names.hnsw_index),
    )
    if found != opclass:
        raise ConfigError(
            f"the HNSW index of {table} uses {found}, but the storage distance needs {opclass}"
        )
    return ext
