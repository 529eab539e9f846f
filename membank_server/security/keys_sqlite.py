"""API keys and teams in a SQLite file: the embedded default.

WAL mode lets several processes on one machine share the file (two servers, the
CLI beside a running server). Calls run on one private thread, never the event loop.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from membank_server.domain.errors import Conflict, StorageUnavailable
from membank_server.domain.security import ApiKey
from membank_server.security._keys_rows import COLUMNS, LAST_ADMIN, key_of, row_of

__all__ = ["SqliteKeyStore"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    scope TEXT NOT NULL,
    user_id TEXT,
    team TEXT,
    digest TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT,
    rate_per_second REAL,
    burst INTEGER
);
CREATE TABLE IF NOT EXISTS secrets (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS team_members (
    team TEXT NOT NULL,
    user_id TEXT NOT NULL,
    PRIMARY KEY (team, user_id)
);
"""


#: Usable admin keys that never expire (what a revocation must leave at least one of).
_LAST_ADMIN = (
    "SELECT count(*) FROM api_keys WHERE role = 'admin' AND revoked_at IS NULL"
    " AND expires_at IS NULL"
)


class _LastAdmin(Exception):
    pass


class SqliteKeyStore:
    """The ``KeyStore`` port over a SQLite file (created 0600 with its folder)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="membank-keys")

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            if self._db is None:
                self._db = self._open()
            try:
                with self._db:
                    return fn(self._db)
            except (sqlite3.IntegrityError, _LastAdmin):
                raise
            except sqlite3.Error as exc:
                raise StorageUnavailable(f"key database {self.path}: {exc}") from exc

        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(_SCHEMA)
            db.isolation_level = "DEFERRED"
        except (OSError, sqlite3.Error) as exc:
            raise StorageUnavailable(f"cannot open key database {self.path}: {exc}") from exc
        return db

    async def start(self) -> None:
        await self._run(lambda db: None)

    async def aclose(self) -> None:
        def close() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await asyncio.get_running_loop().run_in_executor(self._pool, close)
        self._pool.shutdown(wait=True)

    async def add(self, key: ApiKey) -> None:
        marks = ", ".join("?" for _ in COLUMNS)
        sql = f"INSERT INTO api_keys ({', '.join(COLUMNS)}) VALUES ({marks})"
        try:
            await self._run(lambda db: db.execute(sql, row_of(key, iso=True)))
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"a key with id {key.id!r} exists") from exc

    async def _one(self, where: str, value: str) -> ApiKey | None:
        sql = f"SELECT * FROM api_keys WHERE {where} = ?"
        row = await self._run(lambda db: db.execute(sql, (value,)).fetchone())
        return key_of(row) if row is not None else None

    async def by_digest(self, digest: str) -> ApiKey | None:
        return await self._one("digest", digest)

    async def get(self, key_id: str) -> ApiKey | None:
        return await self._one("id", key_id)

    async def all(self) -> list[ApiKey]:
        rows = await self._run(
            lambda db: db.execute("SELECT * FROM api_keys ORDER BY created_at, id").fetchall()
        )
        return [key_of(r) for r in rows]

    async def revoke(self, key_id: str, at: datetime, *, keep_admin: bool = True) -> ApiKey | None:
        def run(db: sqlite3.Connection) -> Any:
            # The UPDATE opens the transaction and takes the write lock first, so two
            # revocations (in any processes) are judged one after the other.
            db.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (at.isoformat(), key_id),
            )
            row = db.execute("SELECT * FROM api_keys WHERE id = ?", (key_id,)).fetchone()
            admin = row is not None and row["role"] == "admin"
            if keep_admin and admin and not db.execute(_LAST_ADMIN).fetchone()[0]:
                raise _LastAdmin
            return row

        try:
            row = await self._run(run)
        except _LastAdmin as exc:
            raise Conflict(LAST_ADMIN) from exc
        return key_of(row) if row is not None else None

    async def restore(self, key_id: str) -> ApiKey | None:
        def run(db: sqlite3.Connection) -> Any:
            db.execute("UPDATE api_keys SET revoked_at = NULL WHERE id = ?", (key_id,))
            return db.execute("SELECT * FROM api_keys WHERE id = ?", (key_id,)).fetchone()

        row = await self._run(run)
        return key_of(row) if row is not None else None

    async def secret(self, name: str) -> bytes:
        fresh = secrets.token_bytes(32)

        def run(db: sqlite3.Connection) -> bytes:
            db.execute("INSERT OR IGNORE INTO secrets (name, value) VALUES (?, ?)", (name, fresh))
            row = db.execute("SELECT value FROM secrets WHERE name = ?", (name,)).fetchone()
            return bytes(row["value"])

        return await self._run(run)

    async def add_member(self, team: str, user_id: str) -> None:
        await self._run(
            lambda db: db.execute(
                "INSERT OR IGNORE INTO team_members (team, user_id) VALUES (?, ?)", (team, user_id)
            )
        )

    async def remove_member(self, team: str, user_id: str) -> bool:
        cur = await self._run(
            lambda db: db.execute(
                "DELETE FROM team_members WHERE team = ? AND user_id = ?", (team, user_id)
            )
        )
        return cur.rowcount > 0

    async def members(self, team: str) -> list[str]:
        rows = await self._run(
            lambda db: db.execute(
                "SELECT user_id FROM team_members WHERE team = ? ORDER BY user_id", (team,)
            ).fetchall()
        )
        return [r["user_id"] for r in rows]

    async def memberships(self) -> list[tuple[str, str]]:
        rows = await self._run(
            lambda db: db.execute(
                "SELECT team, user_id FROM team_members ORDER BY team, user_id"
            ).fetchall()
        )
        return [(r["team"], r["user_id"]) for r in rows]

    async def is_member(self, team: str, user_id: str) -> bool:
        row = await self._run(
            lambda db: db.execute(
                "SELECT 1 FROM team_members WHERE team = ? AND user_id = ?", (team, user_id)
            ).fetchone()
        )
        return row is not None
