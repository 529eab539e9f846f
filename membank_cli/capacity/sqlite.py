"""Samples from a SQLite history file (the server's own, or a copy of it).

The table is :data:`membank_server.domain.capacity.SQLITE_SCHEMA`; the file is
opened read-only, so a running server's history can be read while it writes.
"""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

from membank_server.domain.capacity import ADDED_COLUMNS, SAMPLE_FIELDS, SQLITE_SCHEMA, Sample
from membank_server.domain.errors import ConfigError

__all__ = ["SqliteHistory", "write_samples"]


def _sample(fields: tuple[str, ...], row: sqlite3.Row) -> Sample:
    values = dict(zip(fields, row, strict=True))
    values["at"] = datetime.fromtimestamp(float(values["at"]), UTC)
    return Sample(**values)


class SqliteHistory:
    """The :class:`~membank_server.domain.capacity.HistorySource` of one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.label = f"history file {path}"
        self.notes: list[str] = []

    def _read(self, since: datetime | None) -> list[Sample]:
        if not self.path.is_file():
            raise ConfigError(f"history file {self.path} does not exist")
        try:
            with closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)) as db:
                have = {row[1] for row in db.execute("PRAGMA table_info(samples)")}
                # A file from before the added columns reads them as their default.
                fields = tuple(f for f in SAMPLE_FIELDS if f in have or f not in ADDED_COLUMNS)
                rows = db.execute(
                    f"SELECT {', '.join(fields)} FROM samples WHERE at >= ? ORDER BY at",
                    (since.timestamp() if since else float("-inf"),),
                ).fetchall()
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"history file {self.path} is not a membank history: {exc}") from exc
        return [_sample(fields, r) for r in rows]

    async def samples(self, since: datetime | None) -> list[Sample]:
        return await asyncio.to_thread(self._read, since)


def write_samples(path: Path, samples: list[Sample]) -> None:
    """Append samples to a history file, creating the table (tests, exports)."""
    with closing(sqlite3.connect(path)) as db, db:
        db.execute(SQLITE_SCHEMA)
        db.executemany(
            f"INSERT OR REPLACE INTO samples ({', '.join(SAMPLE_FIELDS)})"
            f" VALUES ({', '.join('?' for _ in SAMPLE_FIELDS)})",
            [
                tuple(s.at.timestamp() if f == "at" else getattr(s, f) for f in SAMPLE_FIELDS)
                for s in samples
            ],
        )
