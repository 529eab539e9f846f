"""SqliteHistoryStore: the server's history in one SQLite file (WAL, shared by workers).

The samples table is :data:`~membank_server.domain.capacity.SQLITE_SCHEMA`, the
one ``membank capacity plan --history FILE`` reads; beside it the request windows
(the SLIs' raw figures), tuning events and a small ``meta`` table of secrets made
once. Several workers write to the file: each statement waits for the lock up to
five seconds, and a sample of a moment already kept is dropped (first one wins).
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from membank_server.domain.capacity import ADDED_COLUMNS, SAMPLE_FIELDS, SQLITE_SCHEMA, Sample
from membank_server.domain.errors import StorageUnavailable
from membank_server.domain.observe import RequestWindow, TuningEvent
from membank_server.history._rows import (
    TUNING_FIELDS,
    WINDOW_FIELDS,
    event_of,
    event_row,
    sample_of,
    sample_row,
    window_of,
    window_row,
)

__all__ = ["SqliteHistoryStore"]

_T = TypeVar("_T")

_SCHEMA = (
    SQLITE_SCHEMA,
    "CREATE TABLE IF NOT EXISTS windows (at REAL NOT NULL PRIMARY KEY, seconds REAL NOT NULL,"
    " requests INTEGER NOT NULL, server_errors INTEGER NOT NULL,"
    " client_errors INTEGER NOT NULL, latency TEXT NOT NULL, cpu REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS tuning (id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL,"
    " session TEXT NOT NULL, action TEXT NOT NULL, tunable TEXT NOT NULL, old REAL, new REAL,"
    " objective TEXT NOT NULL, before REAL, after REAL, note TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL)",
)


class SqliteHistoryStore:
    """The :class:`~membank_server.domain.observe.HistoryStore` port on a SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    async def start(self) -> None:
        def open_() -> None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=5.0, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            with db:
                for statement in _SCHEMA:
                    db.execute(statement)
                have = {row[1] for row in db.execute("PRAGMA table_info(samples)")}
                for column, kind in ADDED_COLUMNS.items():
                    if column not in have:  # a history from before the column
                        db.execute(f"ALTER TABLE samples ADD COLUMN {column} {kind}")
            self._db = db

        await self._run(open_, "open")

    async def aclose(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await asyncio.to_thread(db.close)

    async def _run(self, work: Callable[[], _T], what: str) -> _T:
        def locked() -> _T:
            with self._lock:
                return work()

        try:
            return await asyncio.to_thread(locked)
        except sqlite3.Error as exc:
            raise StorageUnavailable(f"the history at {self.path}: {what} failed: {exc}") from exc

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StorageUnavailable(f"the history at {self.path} is not open")
        return self._db

    async def add(self, sample: Sample, window: RequestWindow) -> bool:
        def add() -> bool:
            db = self._conn()
            with db:
                kept = db.execute(
                    f"INSERT OR IGNORE INTO samples ({', '.join(SAMPLE_FIELDS)})"
                    f" VALUES ({', '.join('?' * len(SAMPLE_FIELDS))})",
                    sample_row(sample, epoch=True),
                ).rowcount
                if kept:
                    db.execute(
                        f"INSERT OR IGNORE INTO windows ({', '.join(WINDOW_FIELDS)})"
                        f" VALUES ({', '.join('?' * len(WINDOW_FIELDS))})",
                        window_row(window, epoch=True),
                    )
            return bool(kept)

        return await self._run(add, "add a sample")

    async def samples(self, since: datetime | None) -> list[Sample]:
        def read() -> list[Sample]:
            rows = self._conn().execute(
                f"SELECT {', '.join(SAMPLE_FIELDS)} FROM samples WHERE at >= ? ORDER BY at",
                (since.timestamp() if since else float("-inf"),),
            )
            return [sample_of(r) for r in rows]

        return await self._run(read, "read samples")

    async def windows(self, since: datetime) -> list[RequestWindow]:
        def read() -> list[RequestWindow]:
            rows = self._conn().execute(
                f"SELECT {', '.join(WINDOW_FIELDS)} FROM windows WHERE at > ? ORDER BY at",
                (since.timestamp(),),
            )
            return [window_of(r) for r in rows]

        return await self._run(read, "read windows")

    async def prune(self, before: datetime) -> int:
        def prune() -> int:
            db = self._conn()
            with db:
                gone = db.execute("DELETE FROM samples WHERE at < ?", (before.timestamp(),))
                db.execute("DELETE FROM windows WHERE at < ?", (before.timestamp(),))
            return gone.rowcount

        return await self._run(prune, "forget old samples")

    async def add_tuning(self, event: TuningEvent) -> None:
        def add() -> None:
            db = self._conn()
            with db:
                db.execute(
                    f"INSERT INTO tuning ({', '.join(TUNING_FIELDS)})"
                    f" VALUES ({', '.join('?' * len(TUNING_FIELDS))})",
                    event_row(event, epoch=True),
                )

        await self._run(add, "record a tuning event")

    async def tuning(self, limit: int) -> list[TuningEvent]:
        def read() -> list[TuningEvent]:
            rows = self._conn().execute(
                f"SELECT {', '.join(TUNING_FIELDS)} FROM (SELECT * FROM tuning"
                " ORDER BY id DESC LIMIT ?) ORDER BY id",
                (limit,),
            )
            return [event_of(r) for r in rows]

        return await self._run(read, "read tuning events")

    async def secret(self, name: str) -> bytes:
        def get() -> bytes:
            db = self._conn()
            with db:
                db.execute(
                    "INSERT OR IGNORE INTO meta (name, value) VALUES (?, ?)",
                    (name, secrets.token_bytes(32)),
                )
                row = db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
            return bytes(row[0])

        return await self._run(get, "read a secret")
