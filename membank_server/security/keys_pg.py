"""API keys and teams in PostgreSQL: shared by every instance of a deployment.

Tables ``<schema>.api_keys``, ``<schema>.team_members`` and ``<schema>.secrets``
are the migrations of the component ``keys`` (see :mod:`membank_server.pg`);
tables an older membank made with ``CREATE TABLE IF NOT EXISTS`` are adopted as
they are. Driver errors become domain errors there too: a taken id or digest is
``Conflict``, a value PostgreSQL refuses ``InvalidInput``, anything else
``StorageUnavailable``; messages never show the password.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from membank_server.domain.errors import Conflict
from membank_server.domain.security import ApiKey
from membank_server.pg import (
    Database,
    Migration,
    PoolSettings,
    apply_migrations,
    check_ident,
    qualify,
)
from membank_server.security._keys_rows import COLUMNS, LAST_ADMIN, key_of, row_of

__all__ = ["PgKeyStore"]

_T = TypeVar("_T")
#: Serialises revocations (the last-admin rule) across instances.
_REVOKE_LOCK = 0x6D626B72
#: Two connections, no limit on a statement: as before the pool settings were shared.
_POOL = PoolSettings(max_size=2, command_timeout=None, statement_timeout_ms=None)
_TAKEN = "a key with this id exists"


def _migrations(schema: str) -> list[Migration]:
    keys, members, named = (qualify(schema, t) for t in ("api_keys", "team_members", "secrets"))

    def there(*tables: str) -> str:
        # Names checked by check_ident: nothing in them needs escaping in a literal.
        return " AND ".join(f"to_regclass('{t}') IS NOT NULL" for t in tables)

    return [
        Migration(
            1,
            (
                f"CREATE TABLE {keys} (id text PRIMARY KEY, name text NOT NULL,"
                " role text NOT NULL, scope text NOT NULL, user_id text, team text,"
                " digest text NOT NULL UNIQUE, created_at timestamptz NOT NULL,"
                " expires_at timestamptz, revoked_at timestamptz,"
                " rate_per_second double precision, burst integer)",
                f"CREATE TABLE {members} (team text NOT NULL, user_id text NOT NULL,"
                " PRIMARY KEY (team, user_id))",
            ),
            adopt=f"SELECT {there(keys, members)}",
        ),
        # Named server secrets (the idempotency key's), added after the first release.
        Migration(
            2,
            (f"CREATE TABLE {named} (name text PRIMARY KEY, value bytea NOT NULL)",),
            adopt=f"SELECT {there(named)}",
        ),
    ]


class PgKeyStore:
    """The ``KeyStore`` port over ``<schema>.api_keys`` and ``<schema>.team_members``.

    Args:
        dsn: ``postgresql://user:password@host:port/db``.
        schema: The schema of the tables (created when missing).
        pool: Pool sizes and timeouts (by default two connections, no statement limit).
    """

    def __init__(self, dsn: str, *, schema: str = "membank", pool: PoolSettings = _POOL) -> None:
        self._schema = check_ident(schema, "setting storage.postgres.schema", longest=63)
        self.db = Database(dsn, pool, label="the key store", application_name="membank-keys")
        self._keys = qualify(schema, "api_keys")
        self._members = qualify(schema, "team_members")
        self._secrets = qualify(schema, "secrets")

    async def start(self) -> None:
        async with self.db.session("migrate the key store") as conn:
            await apply_migrations(conn, self._schema, "keys", lambda _: _migrations(self._schema))
        await self.db.open()

    async def aclose(self) -> None:
        await self.db.close()

    async def _run(
        self, what: str, op: Callable[[Any], Awaitable[_T]], *, transaction: bool = False
    ) -> _T:
        return await self.db.run(what, op, transaction=transaction, conflict=_TAKEN)

    async def add(self, key: ApiKey) -> None:
        marks = ", ".join(f"${i}" for i in range(1, len(COLUMNS) + 1))
        sql = f"INSERT INTO {self._keys} ({', '.join(COLUMNS)}) VALUES ({marks})"
        await self._run("add a key", lambda c: c.execute(sql, *row_of(key, iso=False)))

    async def by_digest(self, digest: str) -> ApiKey | None:
        sql = f"SELECT * FROM {self._keys} WHERE digest = $1"
        row = await self._run("look up a key", lambda c: c.fetchrow(sql, digest))
        return key_of(row) if row is not None else None

    async def get(self, key_id: str) -> ApiKey | None:
        sql = f"SELECT * FROM {self._keys} WHERE id = $1"
        row = await self._run("read a key", lambda c: c.fetchrow(sql, key_id))
        return key_of(row) if row is not None else None

    async def all(self) -> list[ApiKey]:
        sql = f"SELECT * FROM {self._keys} ORDER BY created_at, id"
        rows = await self._run("list keys", lambda c: c.fetch(sql))
        return [key_of(r) for r in rows]

    async def revoke(self, key_id: str, at: datetime, *, keep_admin: bool = True) -> ApiKey | None:
        async def op(conn: Any) -> Any:
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
            return row

        row = await self._run("revoke a key", op, transaction=True)
        return key_of(row) if row is not None else None

    async def restore(self, key_id: str) -> ApiKey | None:
        sql = f"UPDATE {self._keys} SET revoked_at = NULL WHERE id = $1 RETURNING *"
        row = await self._run("restore a key", lambda c: c.fetchrow(sql, key_id))
        return key_of(row) if row is not None else None

    async def secret(self, name: str) -> bytes:
        insert = f"INSERT INTO {self._secrets} (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING"
        await self._run("keep a secret", lambda c: c.execute(insert, name, secrets.token_bytes(32)))
        sql = f"SELECT value FROM {self._secrets} WHERE name = $1"
        row = await self._run("read a secret", lambda c: c.fetchrow(sql, name))
        return bytes(row["value"])

    async def add_member(self, team: str, user_id: str) -> None:
        sql = f"INSERT INTO {self._members} (team, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING"
        await self._run("add a team member", lambda c: c.execute(sql, team, user_id))

    async def remove_member(self, team: str, user_id: str) -> bool:
        sql = f"DELETE FROM {self._members} WHERE team = $1 AND user_id = $2"
        status = await self._run("remove a team member", lambda c: c.execute(sql, team, user_id))
        return str(status).endswith(" 1")

    async def members(self, team: str) -> list[str]:
        sql = f"SELECT user_id FROM {self._members} WHERE team = $1 ORDER BY user_id"
        rows = await self._run("list team members", lambda c: c.fetch(sql, team))
        return [r["user_id"] for r in rows]

    async def memberships(self) -> list[tuple[str, str]]:
        sql = f"SELECT team, user_id FROM {self._members} ORDER BY team, user_id"
        rows = await self._run("list team memberships", lambda c: c.fetch(sql))
        return [(r["team"], r["user_id"]) for r in rows]

    async def is_member(self, team: str, user_id: str) -> bool:
        sql = f"SELECT 1 FROM {self._members} WHERE team = $1 AND user_id = $2"
        row = await self._run("look up a team member", lambda c: c.fetchrow(sql, team, user_id))
        return row is not None
