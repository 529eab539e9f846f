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
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

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
    PRIMARY KEY (memory_id, version, event)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS history_user ON history (user_id);
"""


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
        rows = [
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
        if not rows:
            return
        conn = self._conn()
        conn.executemany("INSERT OR REPLACE INTO history VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        if self.limit is not None:
            newest: dict[str, int] = {}
            for memory_id, version, *_ in rows:
                newest[memory_id] = max(version, newest.get(memory_id, 0))
            conn.executemany(
                "DELETE FROM history WHERE memory_id = ? AND version <= ?",
                [(i, v - self.limit) for i, v in newest.items()],
            )

    def delete_user(self, user_id: str) -> None:
        self._conn().execute("DELETE FROM history WHERE user_id = ?", (user_id,))

    def delete_memories(self, memory_ids: Sequence[str]) -> None:
        self._conn().executemany(
            "DELETE FROM history WHERE memory_id = ?", [(i,) for i in memory_ids]
        )

    # -- reads (any thread) ---------------------------------------------------------

    def read(self, user_id: str, memory_id: str, up_to: int) -> tuple[HistoryEvent, ...]:
        rows = self._conn().execute(
            "SELECT event, version, content, metadata, at FROM history"
            " WHERE memory_id = ? AND user_id = ? AND version <= ? ORDER BY version, at",
            (memory_id, user_id, up_to),
        )
        return tuple(_event(row) for row in rows)

    def read_many(self, memory_ids: Sequence[str]) -> dict[str, tuple[HistoryEvent, ...]]:
        found: dict[str, list[HistoryEvent]] = {}
        conn = self._conn()
        for start in range(0, len(memory_ids), 500):
            chunk = memory_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(
                "SELECT memory_id, event, version, content, metadata, at FROM history"
                f" WHERE memory_id IN ({marks}) ORDER BY memory_id, version, at",
                chunk,
            )
            for memory_id, *rest in rows:
                found.setdefault(memory_id, []).append(_event(tuple(rest)))
        return {k: tuple(v) for k, v in found.items()}

    def integrity(self) -> str:
        """``ok``, or what SQLite's quick check found wrong."""
        rows = self._conn().execute("PRAGMA quick_check").fetchall()
        return "; ".join(str(r[0]) for r in rows)


def _event(row: tuple[object, ...]) -> HistoryEvent:
    event, version, content, metadata, at = row
    return HistoryEvent(
        event=Event(str(event)),
        version=int(str(version)),
        content=str(content),
        metadata=json.loads(str(metadata)),
        at=datetime.fromisoformat(str(at)),
    )
