"""Databases made by older membank code keep working after the move to one migrations table.

The key store used to create its tables with ``CREATE ... IF NOT EXISTS`` and
record nothing. Each test below lays out a schema with that old
code's DDL (copied here as it was), fills it, then starts the current code on it:
the rows must still be there, and the tables must be adopted (recorded as
migrations), not made again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg  # type: ignore[import-untyped]
import pytest

from membank_server.domain.security import ApiKey, Role, Scope
from membank_server.security.keys_pg import PgKeyStore

__all__: list[str] = []

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

#: The key store's DDL at its first release (no secrets table yet).
KEYS_FIRST = """
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.api_keys (
    id text PRIMARY KEY, name text NOT NULL, role text NOT NULL, scope text NOT NULL,
    user_id text, team text, digest text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL, expires_at timestamptz, revoked_at timestamptz,
    rate_per_second double precision, burst integer);
CREATE TABLE IF NOT EXISTS {s}.team_members (
    team text NOT NULL, user_id text NOT NULL, PRIMARY KEY (team, user_id));
"""
#: ... and as it was last, with the named secrets.
KEYS_LAST = (
    KEYS_FIRST
    + """
CREATE TABLE IF NOT EXISTS {s}.secrets (
    name text PRIMARY KEY, value bytea NOT NULL);
"""
)


@pytest.fixture
async def admin(pg_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(pg_dsn)
    yield conn
    await conn.close()


async def _recorded(admin: asyncpg.Connection, schema: str) -> list[tuple[str, int]]:
    rows = await admin.fetch(
        f'SELECT component, version FROM "{schema}".schema_migrations ORDER BY 1, 2'
    )
    return [(r["component"], r["version"]) for r in rows]


async def _old_key(admin: asyncpg.Connection, schema: str) -> None:
    await admin.execute(
        f"INSERT INTO {schema}.api_keys (id, name, role, scope, user_id, digest, created_at)"
        " VALUES ('k1', 'old', 'user', 'own', 'alice', 'd-k1', $1)",
        NOW,
    )
    await admin.execute(f"INSERT INTO {schema}.team_members VALUES ('t', 'alice')")


@pytest.mark.parametrize("ddl", [KEYS_FIRST, KEYS_LAST], ids=["first-release", "last"])
async def test_an_old_key_store_is_adopted_with_its_keys(
    pg_dsn: str, pg_schema: str, admin: asyncpg.Connection, ddl: str
) -> None:
    await admin.execute(ddl.format(s=pg_schema))
    await _old_key(admin, pg_schema)
    kept = b"k" * 32
    if ddl is KEYS_LAST:
        await admin.execute(f"INSERT INTO {pg_schema}.secrets VALUES ('idempotency', $1)", kept)

    store = PgKeyStore(pg_dsn, schema=pg_schema)
    await store.start()
    try:
        assert await store.get("k1") == ApiKey(
            id="k1", name="old", role=Role.USER, scope=Scope.OWN, created_at=NOW,
            digest="d-k1", user_id="alice",
        )  # fmt: skip
        assert await store.members("t") == ["alice"]
        secret = await store.secret("idempotency")
        assert secret == kept if ddl is KEYS_LAST else len(secret) == 32
    finally:
        await store.aclose()

    assert await _recorded(admin, pg_schema) == [("keys", 1), ("keys", 2)]
    again = PgKeyStore(pg_dsn, schema=pg_schema)
    await again.start()  # recorded now: nothing is run twice
    assert [k.id for k in await again.all()] == ["k1"]
    await again.aclose()
