"""Schema migrations: numbered per component, recorded in one table, applied under one lock.

Every membank component that keeps tables in PostgreSQL (``memories:<prefix>``,
``outbox:<prefix>``, ``keys``, ``audit``) numbers its migrations; the versions
applied are rows of ``<schema>.schema_migrations``, so components share a
schema. Missing ones are applied in order in one transaction under one advisory
lock (creating the ``vector`` extension included): instances starting together
queue up and the second finds the work done.

Adoption: tables made by code that predates this table (the key store and the
audit log created theirs with ``CREATE ... IF NOT EXISTS``) are taken over, not
made again. Such a migration carries an ``adopt`` query, true when everything it
would create is already there; then it is recorded without being run. When all
that is missing is such a record and this login may not write the table (a role
granted only what its own work needs), nothing is written: the objects are
there, and a login that may will record them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from membank_server.domain.errors import ConfigError
from membank_server.pg._idents import qualify, quote_ident

__all__ = [
    "MIGRATIONS",
    "Migration",
    "applied_versions",
    "apply_migrations",
    "drop_component",
    "lock_schema",
    "vector_schema",
]

#: The table, in each schema membank uses, that records the migrations applied.
MIGRATIONS = "schema_migrations"
#: One lock for every membank schema change in a database ("membank" in ASCII).
_LOCK_KEY = 0x6D656D62616E6B


@dataclass(frozen=True, slots=True)
class Migration:
    """One step of a component's schema.

    Args:
        version: Its number within the component, from 1.
        statements: Run in order, in the transaction that records the version.
        adopt: A query true when what ``statements`` create is already there
            (made before migrations were recorded): the version is then recorded
            without running them.
    """

    version: int
    statements: tuple[str, ...]
    adopt: str | None = None


async def lock_schema(conn: Any) -> None:
    """Serialise schema changes of every membank instance (held until the transaction ends)."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)


async def vector_schema(conn: Any) -> str | None:
    """The schema the ``vector`` extension lives in, or None when it is not installed."""
    found: str | None = await conn.fetchval(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
        " WHERE e.extname = 'vector'"
    )
    return found


async def applied_versions(conn: Any, schema: str, component: str) -> set[int]:
    """Versions of a component recorded; empty when nothing is, or this login may not look."""
    table = qualify(schema, MIGRATIONS)
    if not await conn.fetchval(
        "SELECT coalesce(has_table_privilege(to_regclass($1), 'SELECT'), false)", table
    ):
        return set()
    rows = await conn.fetch(f"SELECT version FROM {table} WHERE component = $1", component)
    return {int(r["version"]) for r in rows}


async def _ensure_vector(conn: Any) -> str | None:
    if (ext := await vector_schema(conn)) is not None:
        return ext
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except asyncpg.InsufficientPrivilegeError as exc:
        raise ConfigError(
            "the vector extension is not installed and this user may not create it: "
            "run CREATE EXTENSION vector as a superuser once"
        ) from exc
    return await vector_schema(conn)


async def _may_record(conn: Any, schema: str) -> bool:
    """Whether this login may write the migrations table (or create it, when missing)."""
    may: bool = await conn.fetchval(
        "SELECT CASE WHEN to_regclass($1) IS NOT NULL"
        " THEN has_table_privilege(to_regclass($1), 'INSERT')"
        " WHEN to_regnamespace($2) IS NOT NULL THEN has_schema_privilege($2, 'CREATE')"
        " ELSE has_database_privilege(current_database(), 'CREATE') END",
        qualify(schema, MIGRATIONS),
        schema,
    )
    return may


async def _create_table(conn: Any, schema: str) -> None:
    # Checked first: CREATE SCHEMA IF NOT EXISTS needs CREATE on the database
    # even when the schema is already there (and CREATE TABLE IF NOT EXISTS, on it).
    if not await conn.fetchval("SELECT to_regnamespace($1) IS NOT NULL", schema):
        await conn.execute(f"CREATE SCHEMA {quote_ident(schema)}")
    table = qualify(schema, MIGRATIONS)
    if not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table):
        await conn.execute(
            f"CREATE TABLE {table} ("
            " component text NOT NULL, version int NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now(),"
            " PRIMARY KEY (component, version))"
        )


async def apply_migrations(
    conn: Any,
    schema: str,
    component: str,
    build: Callable[[str | None], Sequence[Migration]],
    *,
    needs_vector: bool = False,
) -> list[int]:
    """Apply a component's missing migrations under the lock; the versions recorded now.

    ``build`` gets the ``vector`` extension's schema (created first when
    ``needs_vector``) to qualify the type and operator classes it names.
    """
    async with conn.transaction():
        await lock_schema(conn)
        ext = await _ensure_vector(conn) if needs_vector else await vector_schema(conn)
        done = await applied_versions(conn, schema, component)
        pending = [m for m in sorted(build(ext), key=lambda m: m.version) if m.version not in done]
        if not pending:
            return []
        there = [m.version for m in pending if m.adopt and await conn.fetchval(m.adopt)]
        if len(there) == len(pending) and not await _may_record(conn, schema):
            return []
        await _create_table(conn, schema)
        for migration in pending:
            if migration.version not in there:
                for statement in migration.statements:
                    await conn.execute(statement)
            await conn.execute(
                f"INSERT INTO {qualify(schema, MIGRATIONS)} (component, version) VALUES ($1, $2)",
                component,
                migration.version,
            )
        return [m.version for m in pending]


async def drop_component(conn: Any, schema: str, component: str, tables: Sequence[str]) -> None:
    """Drop a component's tables (qualified names) and forget its migrations, under the
    lock and in one transaction, so that its next start makes them anew."""
    table = qualify(schema, MIGRATIONS)
    async with conn.transaction():
        await lock_schema(conn)
        await conn.execute(f"DROP TABLE IF EXISTS {', '.join(tables)}")
        if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table):
            await conn.execute(f"DELETE FROM {table} WHERE component = $1", component)
