"""Databases made by older membank code keep working after the move to one migrations table.

The key store and the audit log used to create their tables with ``CREATE ... IF
NOT EXISTS`` and record nothing. Each test below lays out a schema with that old
code's DDL (copied here as it was), fills it, then starts the current code on it:
the rows must still be there, and the tables must be adopted (recorded as
migrations), not made again.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]
import pytest

from membank_server.domain.security import ApiKey, AuditEntry, Role, Scope
from membank_server.security.audit_pg import PgAuditLog
from membank_server.security.keys_pg import PgKeyStore
from membank_server.storage.pgvector import PgVectorStore

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
#: The audit log's DDL as its ``_migrate`` ran it on an empty schema.
AUDIT = [
    'CREATE SCHEMA "{s}"',
    'CREATE TABLE "{s}".audit_log (id bigserial PRIMARY KEY,'
    " at timestamptz NOT NULL, request_id text NOT NULL, actor text NOT NULL,"
    " client text NOT NULL, action text NOT NULL, target text NOT NULL,"
    " result text NOT NULL, status int NOT NULL,"
    " details jsonb NOT NULL DEFAULT '{{}}'::jsonb)",
    'CREATE INDEX audit_log_at_idx ON "{s}".audit_log (at)',
    'CREATE FUNCTION "{s}".audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN'
    " RAISE EXCEPTION 'the membank audit log is append-only: % on %.% refused',"
    " TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME; END $$",
    'CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON "{s}".audit_log'
    ' FOR EACH ROW EXECUTE FUNCTION "{s}".audit_log_append_only()',
    'CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON "{s}".audit_log'
    ' FOR EACH STATEMENT EXECUTE FUNCTION "{s}".audit_log_append_only()',
]


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


async def test_an_old_audit_log_is_adopted_and_stays_append_only(
    pg_dsn: str, pg_schema: str, admin: asyncpg.Connection
) -> None:
    for statement in AUDIT:
        await admin.execute(statement.format(s=pg_schema))
    await admin.execute(
        f'INSERT INTO "{pg_schema}".audit_log'
        " (at, request_id, actor, client, action, target, result, status, details)"
        " VALUES ($1, 'req-old', 'config', 'local', 'key.revoke', 'key:k1', 'ok', 200,"
        ' \'{"reason": "old"}\'::jsonb)',
        NOW,
    )

    log = PgAuditLog(pg_dsn, schema=pg_schema)
    await log.start()
    try:
        await log.append(AuditEntry(NOW, "req-new", "key_1", "127.0.0.1", "x", "y", "ok", 200))
        assert [e.request_id for e in await log.read()] == ["req-old", "req-new"]
    finally:
        await log.aclose()

    assert await _recorded(admin, pg_schema) == [("audit", 1)]
    with pytest.raises(asyncpg.PostgresError, match="append-only"):
        await admin.execute(f'DELETE FROM "{pg_schema}".audit_log')


async def test_a_log_writer_granted_only_its_table_starts_on_an_old_log(
    pg_dsn: str, pg_schema: str, admin: asyncpg.Connection
) -> None:
    """The documented tamper-evident set-up: the table made by another role, the
    server's role granted INSERT and SELECT on it and nothing else."""
    for statement in AUDIT:
        await admin.execute(statement.format(s=pg_schema))
    role = f"mb_writer_{uuid.uuid4().hex[:8]}"
    await admin.execute(f"CREATE ROLE {role} LOGIN")
    try:
        await admin.execute(f'GRANT USAGE ON SCHEMA "{pg_schema}" TO {role}')
        await admin.execute(f'GRANT INSERT, SELECT ON "{pg_schema}".audit_log TO {role}')
        await admin.execute(f'GRANT USAGE ON SEQUENCE "{pg_schema}".audit_log_id_seq TO {role}')
        parts = urlsplit(pg_dsn)
        as_writer = urlunsplit(parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port}"))

        log = PgAuditLog(as_writer, schema=pg_schema)
        await log.start()
        try:
            await log.append(AuditEntry(NOW, "req-1", "key_1", "127.0.0.1", "x", "y", "ok", 200))
            assert [e.request_id for e in await log.read()] == ["req-1"]
        finally:
            await log.aclose()
        # Nothing recorded: this role may not, and the owner's next start will.
        assert (
            await admin.fetchval("SELECT to_regclass($1)", f'"{pg_schema}".schema_migrations')
            is None
        )
        owner = PgAuditLog(pg_dsn, schema=pg_schema)
        await owner.start()
        await owner.aclose()
        assert await _recorded(admin, pg_schema) == [("audit", 1)]
        again = PgAuditLog(as_writer, schema=pg_schema)  # may not even read the record
        await again.start()
        await again.aclose()
    finally:
        await admin.execute(f"DROP OWNED BY {role}")
        await admin.execute(f"DROP ROLE {role}")


async def test_store_keys_and_audit_share_one_migrations_table(
    pg_dsn: str, pg_schema: str, admin: asyncpg.Connection, dim: int
) -> None:
    # An old deployment: the store's tables recorded, the key store's not.
    store = PgVectorStore(pg_dsn, dimension=dim, schema=pg_schema)
    await store.migrate()
    await admin.execute(KEYS_LAST.format(s=pg_schema))
    await _old_key(admin, pg_schema)

    keys, log = PgKeyStore(pg_dsn, schema=pg_schema), PgAuditLog(pg_dsn, schema=pg_schema)
    for part in (store, keys, log):
        await part.start()
    try:
        assert await keys.get("k1") is not None
        assert await store.count() == 0
    finally:
        for part in (store, keys, log):
            await part.aclose()

    assert await _recorded(admin, pg_schema) == [
        ("audit", 1),
        ("keys", 1),
        ("keys", 2),
        ("memories:memories", 1),
        ("memories:memories", 2),
        ("memories:memories", 3),
    ]
