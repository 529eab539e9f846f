"""API keys and teams in PostgreSQL: shared by every instance of a deployment."""

from __future__ import annotations

import re
import secrets
from datetime import datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from membank_server.domain.errors import ConfigError, Conflict, InvalidInput, StorageUnavailable
from membank_server.domain.security import ApiKey
from membank_server.security._keys_rows import COLUMNS, LAST_ADMIN, key_of, row_of

__all__ = ["PgKeyStore"]

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$(?!\n)")
_DRIVER = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)
#: One advisory lock id for this component's DDL, so instances starting together queue.
_LOCK = 0x6D626B65
#: Serialises revocations (the last-admin rule) across instances.
_REVOKE_LOCK = 0x6D626B72


class PgKeyStore:
    """The ``KeyStore`` port over ``<schema>.api_keys`` and ``<schema>.team_members``."""

    def __init__(self, dsn: str, *, schema: str = "membank", timeout: float = 10.0) -> None:
        if not _IDENT.match(schema):
            raise ConfigError(f"setting security schema {schema!r} is not a plain identifier")
        self._dsn = dsn
        self._schema = schema
        self._timeout = timeout
        self._pool: Any = None

    @property
    def _keys(self) -> str:
        return f"{self._schema}.api_keys"

    async def start(self) -> None:
        ddl = f"""
        CREATE SCHEMA IF NOT EXISTS {self._schema};
        CREATE TABLE IF NOT EXISTS {self._keys} (
            id text PRIMARY KEY, name text NOT NULL, role text NOT NULL, scope text NOT NULL,
            user_id text, team text, digest text NOT NULL UNIQUE,
            created_at timestamptz NOT NULL, expires_at timestamptz, revoked_at timestamptz,
            rate_per_second double precision, burst integer);
        CREATE TABLE IF NOT EXISTS {self._schema}.secrets (
            name text PRIMARY KEY, value bytea NOT NULL);
        CREATE TABLE IF NOT EXISTS {self._schema}.team_members (
            team text NOT NULL, user_id text NOT NULL, PRIMARY KEY (team, user_id));
        """
        try:
            self._pool = await asyncpg.create_pool(
                self._dsn, min_size=1, max_size=2, timeout=self._timeout
            )
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute(f"SELECT pg_advisory_xact_lock({_LOCK})")
                await conn.execute(ddl)
        except _DRIVER as exc:
            raise StorageUnavailable(f"key store: PostgreSQL unavailable: {exc}") from exc

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def _call(self, method: str, sql: str, *args: Any) -> Any:
        if self._pool is None:
            raise StorageUnavailable("key store is not started")
        try:
            return await getattr(self._pool, method)(sql, *args)
        except asyncpg.UniqueViolationError as exc:
            raise Conflict("a key with this id exists") from exc
        except (asyncpg.CharacterNotInRepertoireError, asyncpg.UntranslatableCharacterError) as exc:
            raise InvalidInput("a value has a character PostgreSQL cannot store") from exc
        except _DRIVER as exc:
            raise StorageUnavailable(f"key store: PostgreSQL unavailable: {exc}") from exc

    async def add(self, key: ApiKey) -> None:
        marks = ", ".join(f"${i}" for i in range(1, len(COLUMNS) + 1))
        sql = f"INSERT INTO {self._keys} ({', '.join(COLUMNS)}) VALUES ({marks})"
        await self._call("execute", sql, *row_of(key, iso=False))

    async def by_digest(self, digest: str) -> ApiKey | None:
        row = await self._call("fetchrow", f"SELECT * FROM {self._keys} WHERE digest = $1", digest)
        return key_of(row) if row is not None else None

    async def get(self, key_id: str) -> ApiKey | None:
        row = await self._call("fetchrow", f"SELECT * FROM {self._keys} WHERE id = $1", key_id)
        return key_of(row) if row is not None else None

    async def all(self) -> list[ApiKey]:
        rows = await self._call("fetch", f"SELECT * FROM {self._keys} ORDER BY created_at, id")
        return [key_of(r) for r in rows]

    async def revoke(self, key_id: str, at: datetime, *, keep_admin: bool = True) -> ApiKey | None:
        if self._pool is None:
            raise StorageUnavailable("key store is not started")
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                # One revocation at a time across instances: the check below sees the
                # outcome of every revocation before it.
                await conn.execute(f"SELECT pg_advisory_xact_lock({_REVOKE_LOCK})")
                row = await conn.fetchrow(
                    f"UPDATE {self._keys} SET revoked_at = coalesce(revoked_at, $2) "
                    "WHERE id = $1 RETURNING *",
                    key_id,
                    at,
                )
                left = await conn.fetchval(
                    f"SELECT count(*) FROM {self._keys} WHERE role = 'admin'"
                    " AND revoked_at IS NULL AND expires_at IS NULL"
                )
                if keep_admin and row is not None and row["role"] == "admin" and not left:
                    raise Conflict(LAST_ADMIN)
        except _DRIVER as exc:
            raise StorageUnavailable(f"key store: PostgreSQL unavailable: {exc}") from exc
        return key_of(row) if row is not None else None

    async def restore(self, key_id: str) -> ApiKey | None:
        row = await self._call(
            "fetchrow",
            f"UPDATE {self._keys} SET revoked_at = NULL WHERE id = $1 RETURNING *",
            key_id,
        )
        return key_of(row) if row is not None else None

    async def secret(self, name: str) -> bytes:
        await self._call(
            "execute",
            f"INSERT INTO {self._schema}.secrets (name, value) VALUES ($1, $2) "
            "ON CONFLICT DO NOTHING",
            name,
            secrets.token_bytes(32),
        )
        row = await self._call(
            "fetchrow", f"SELECT value FROM {self._schema}.secrets WHERE name = $1", name
        )
        return bytes(row["value"])

    async def add_member(self, team: str, user_id: str) -> None:
        await self._call(
            "execute",
            f"INSERT INTO {self._schema}.team_members (team, user_id) VALUES ($1, $2) "
            "ON CONFLICT DO NOTHING",
            team,
            user_id,
        )

    async def remove_member(self, team: str, user_id: str) -> bool:
        status = await self._call(
            "execute",
            f"DELETE FROM {self._schema}.team_members WHERE team = $1 AND user_id = $2",
            team,
            user_id,
        )
        return str(status).endswith(" 1")

    async def members(self, team: str) -> list[str]:
        rows = await self._call(
            "fetch",
            f"SELECT user_id FROM {self._schema}.team_members WHERE team = $1 ORDER BY user_id",
            team,
        )
        return [r["user_id"] for r in rows]

    async def is_member(self, team: str, user_id: str) -> bool:
        row = await self._call(
            "fetchrow",
            f"SELECT 1 FROM {self._schema}.team_members WHERE team = $1 AND user_id = $2",
            team,
            user_id,
        )
        return row is not None
