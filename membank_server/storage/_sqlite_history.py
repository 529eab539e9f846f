"""The embedded store's history: one SQLite database beside the Qdrant Edge shard.

History is read rarely and only grows, so it stays out of the shard's payloads: a
read of a memory never loads it, and a change appends one row instead of rewriting
every earlier version. One row per event, keyed by ``(memory_id, version, event)``
(a write of the same event replaces it). ``EdgeStore`` writes here from its writer
thread inside its group commit: one transaction per group, a savepoint per write,
committed (``synchronous=FULL``: fsynced) before the shard's flush, so an event is
durable before the record that names its version. A crash between the two leaves
an event newer than its record; :meth:`SqliteHistory.read` shows only the events
up to the record's version, so that event never shows, and the retried write
replaces it.

Each row carries a digest of its fields (``domain.integrity.event_check``): a row that
no longer matches it is left out of every read and reported as damaged.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from membank_server.domain.errors import IntegrityError
from membank_server.domain.integrity import event_check, report_damage
from membank_server.domain.model import Event, HistoryEvent, Memory

__all__ = ["SqliteHistory"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS history (
    memory_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    event TEXT NOT NULL,
    user_id TEXT NOT NULL,
    content TEXT NOT NULL,
    metadata TEXT NOT NULL,
    at TEXT NOT NULL,
    digest TEXT,
    PRIMARY KEY (memory_id, version, event)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS history_user ON history (user_id);
"""
_COLUMNS = "memory_id, version, event, user_id, content, metadata, at"


class SqliteHistory:
    """History events in ``path``; a connection per thread (writer and readers).

    Args:
        path: The database file (created with its folder).
        limit: Versions kept per memory; older events are pruned as newer ones come.
    """

    def __init__(self, path: Path, limit: int | None) -> None:
        self.path = path
        self.limit = limit
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        # Bumped by close(): other threads' connections are then stale, made anew.
        self._generation = 0

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "generation", -1) != self._generation:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            # A damaged byte must not make a row unreadable: it decodes (with U+FFFD)
            # and then fails its digest, so the read leaves it out and reports it.
            conn.text_factory = lambda raw: raw.decode("utf-8", "replace")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=10000")
            self._local.conn = conn
            self._local.generation = self._generation
            with self._lock:
                self._all.append(conn)
        return conn

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn().executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
            self._generation += 1
        for conn in conns:
            conn.close()

    # -- writes (the writer thread) -----------------------------------------------

    def begin(self) -> None:
        self._conn().execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self._conn().execute("COMMIT")

    def rollback(self) -> None:
        conn = self._conn()
        if conn.in_transaction:
            conn.execute("ROLLBACK")

    def savepoint(self, name: str) -> None:
        self._conn().execute(f"SAVEPOINT {name}")

    def release(self, name: str) -> None:
        self._conn().execute(f"RELEASE {name}")

    def undo(self, name: str) -> None:
        conn = self._conn()
        conn.execute(f"ROLLBACK TO {name}")
        conn.execute(f"RELEASE {name}")

    def add(self, events: Iterable[tuple[Memory, HistoryEvent]]) -> None:
        """Write events (replacing equal keys) and prune each memory past the limit."""
        fields = [
            (
                str(m.id),
                h.version,
                h.event.value,
                m.user_id,
                h.content,
                json.dumps(dict(h.metadata), ensure_ascii=False, separators=(",", ":")),
                h.at.isoformat(),
            )
            for m, h in events
        ]
        if not fields:
            return
        rows = [(*f, event_check(*f)) for f in fields]
        conn = self._conn()
        conn.executemany("INSERT OR REPLACE INTO history VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        if self.limit is not None:
            newest: dict[str, int] = {}
            for memory_id, version, *_ in rows:
                newest[memory_id] = max(version, newest.get(memory_id, 0))
            # Versions start at 1: a memory at or below the limit has nothing to prune
            # (every new memory, most of a batch ingest).
            conn.executemany(
                "DELETE FROM history WHERE memory_id = ? AND version <= ?",
                [(i, v - self.limit) for i, v in newest.items() if v > self.limit],
            )

    def delete_user(self, user_id: str) -> None:
        self._conn().execute("DELETE FROM history WHERE user_id = ?", (user_id,))

    def delete_memories(self, memory_ids: Sequence[str]) -> None:
        self._conn().executemany(
            "DELETE FROM history WHERE memory_id = ?", [(i,) for i in memory_ids]
        )

    # -- reads (any thread) ---------------------------------------------------------

    def read(self, user_id: str, memory_id: str, up_to: int) -> tuple[HistoryEvent, ...]:
        try:
            rows = self._conn().execute(
                f"SELECT {_COLUMNS}, digest FROM history"
                " WHERE memory_id = ? AND user_id = ? AND version <= ? ORDER BY version, at",
                (memory_id, user_id, up_to),
            )
            return tuple(_sound(rows))
        except sqlite3.DatabaseError as exc:
            raise _damaged_database(self.path, exc) from exc

    def read_many(self, memory_ids: Sequence[str]) -> dict[str, tuple[HistoryEvent, ...]]:
        try:
            return self._read_many(memory_ids)
        except sqlite3.DatabaseError as exc:
            raise _damaged_database(self.path, exc) from exc

    def _read_many(self, memory_ids: Sequence[str]) -> dict[str, tuple[HistoryEvent, ...]]:
        found: dict[str, list[HistoryEvent]] = {}
        conn = self._conn()
        for start in range(0, len(memory_ids), 500):
            chunk = memory_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(
                f"SELECT {_COLUMNS}, digest FROM history"
                f" WHERE memory_id IN ({marks}) ORDER BY memory_id, version, at",
                chunk,
            )
            for memory_id, event in _sound(rows, with_id=True):
                found.setdefault(memory_id, []).append(event)
        return {k: tuple(v) for k, v in found.items()}

    def memories(self) -> dict[str, tuple[str, set[int], bool]]:
        """Per memory with history: its user, the versions of its sound events, and
        whether a row of it is damaged (for verification)."""
        out: dict[str, tuple[str, set[int], bool]] = {}
        try:
            rows = self._conn().execute(f"SELECT {_COLUMNS}, digest FROM history").fetchall()
        except sqlite3.DatabaseError as exc:
            raise _damaged_database(self.path, exc) from exc
        for row in rows:
            memory_id, version, user_id = str(row[0]), row[1], str(row[3])
            user, versions, _ = out.setdefault(memory_id, (user_id, set(), False))
            if row[7] is None or event_check(*row[:7]) == row[7]:
                versions.add(int(version))
            else:
                out[memory_id] = (user, versions, True)
        return out

    def integrity(self) -> str:
        """``ok``, or what SQLite's integrity check found wrong (indexes included: a
        damaged index hides rows from reads that a table scan still sees)."""
        try:
            rows = self._conn().execute("PRAGMA integrity_check(20)").fetchall()
        except sqlite3.DatabaseError as exc:
            return str(exc)
        return "; ".join(str(r[0]) for r in rows)


def _damaged_database(path: Path, exc: sqlite3.DatabaseError) -> IntegrityError:
    report_damage(str(path), f"history database: {exc}")
    return IntegrityError(
        f"the history database is damaged ({exc}): run `membank collection verify`",
        {"problem": str(exc)},
    )


def _sound(rows: Iterable[Any], *, with_id: bool = False) -> Iterator[Any]:
    """The events of rows that match their digest; the others are reported, not read."""
    for row in rows:
        *fields, digest = row
        if digest is not None and event_check(*fields) != digest:
            report_damage(str(fields[0]), "a history event differs from the one written")
            continue
        memory_id, version, event, _, content, metadata, at = fields
        decoded = _event((event, version, content, metadata, at))
        yield (memory_id, decoded) if with_id else decoded


def _event(row: tuple[object, ...]) -> HistoryEvent:
    event, version, content, metadata, at = row
    return HistoryEvent(
        event=Event(str(event)),
        version=int(str(version)),
        content=str(content),
        metadata=json.loads(str(metadata)),
        at=datetime.fromisoformat(str(at)),
    )
