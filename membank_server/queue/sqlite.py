"""SqliteJobQueue: the job queue of the embedded default, one SQLite file in the data folder.

One process owns the data folder (``storage.folder.FolderLock``), so one process
owns this file: every statement runs on one thread with one connection, and a
claim is a plain transaction. ``synchronous=FULL`` in WAL mode: a submit is on disk
(fsynced) before the job is answered 202. At start, items left leased by the
previous process (killed mid-job) are pending again.

Counts that back-pressure reads on every submit (items waiting in all, per kind
and per user) are kept in a ``counters`` table in the same transactions that
change them, so no submit counts rows.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

from membank_server.domain.errors import StorageUnavailable
from membank_server.domain.jobs import (
    Claimed,
    DeadItem,
    ItemOutcome,
    ItemResult,
    ItemState,
    Job,
    JobItem,
    JobKind,
    QueueLimits,
)
from membank_server.queue._limits import check_limits

__all__ = ["SqliteJobQueue"]

_T = TypeVar("_T")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, user_ids TEXT NOT NULL,
    created_at REAL NOT NULL, updated_at REAL NOT NULL,
    total INTEGER NOT NULL, done INTEGER NOT NULL DEFAULT 0, dead INTEGER NOT NULL DEFAULT 0,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS job_users (
    user_id TEXT NOT NULL, created_at REAL NOT NULL, job_id TEXT NOT NULL,
    PRIMARY KEY (user_id, created_at, job_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS items (
    seq INTEGER PRIMARY KEY, job_id TEXT NOT NULL, idx INTEGER NOT NULL, kind TEXT NOT NULL,
    user_id TEXT NOT NULL, payload BLOB, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    available_at REAL NOT NULL, lease_until REAL, enqueued_at REAL NOT NULL,
    memory_id TEXT, detail BLOB, error_code TEXT, error TEXT, finished_at REAL,
    UNIQUE (job_id, idx)
);
CREATE INDEX IF NOT EXISTS items_ready ON items (kind, state, available_at);
CREATE INDEX IF NOT EXISTS items_dead ON items (finished_at) WHERE state = 'dead';
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
"""
_ITEM = "idx, user_id, state, attempts, memory_id, detail, error_code, error"
_JOB = "id, kind, user_ids, created_at, updated_at, total, done, dead"
_WAITING = ("pending", "leased")


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _job(row: Sequence[Any]) -> Job:
    return Job(
        UUID(row[0]), JobKind(row[1]), tuple(json.loads(row[2])), _at(row[3]), _at(row[4]),
        row[5], row[6], row[7],
    )  # fmt: skip


class SqliteJobQueue:
    """The :class:`~membank_server.domain.jobs.JobQueue` port in one SQLite file.

    Args:
        path: The database file (its folder is made).
        clock: Epoch seconds (tests pass their own).
    """

    backend = "local"

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._conn: sqlite3.Connection | None = None
        self._thread: ThreadPoolExecutor | None = None

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="membank-queue")
        await self._run(self._open)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.executescript(_SCHEMA)
        self._conn = conn
        # Whoever leased these is gone: this process owns the folder now.
        with self._tx() as c:
            c.execute(
                "UPDATE items SET state = 'pending', lease_until = NULL WHERE state = 'leased'"
            )

    async def aclose(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(thread, self._close)
        finally:
            thread.shutdown(wait=True)

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    async def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        thread = self._thread
        if thread is None:
            raise StorageUnavailable("the job queue is not open")
        try:
            return await asyncio.get_running_loop().run_in_executor(thread, fn, *args)
        except sqlite3.Error as exc:
            raise StorageUnavailable(f"the job queue ({self.path.name}) failed: {exc}") from exc

    def _tx(self) -> _Tx:
        if self._conn is None:
            raise StorageUnavailable("the job queue is not open")
        return _Tx(self._conn)

    # -- writes ------------------------------------------------------------------

    async def submit(self, job: Job, items: Sequence[JobItem], limits: QueueLimits) -> None:
        await self._run(self._submit, job, items, limits)

    def _submit(self, job: Job, items: Sequence[JobItem], limits: QueueLimits) -> None:
        now = self._clock()
        created = job.created_at.timestamp()
        per_user = Counter(item.user_id for item in items)
        with self._tx() as c:
            names = ["*", *(f"user:{u}" for u in per_user)]
            check_limits({n: _counter(c, n) for n in names}, len(items), per_user, limits)
            c.execute(
                f"INSERT INTO jobs ({_JOB}) VALUES (?, ?, ?, ?, ?, ?, 0, 0)",
                (str(job.id), job.kind.value, json.dumps(job.user_ids), created, created,
                 job.total),
            )  # fmt: skip
            c.executemany(
                "INSERT INTO job_users VALUES (?, ?, ?)",
                [(u, created, str(job.id)) for u in job.user_ids],
            )
            c.executemany(
                "INSERT INTO items (job_id, idx, kind, user_id, payload, state, available_at,"
                " enqueued_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)",
                [
                    (str(job.id), i, job.kind.value, item.user_id, item.payload, now, now)
                    for i, item in enumerate(items)
                ],
            )
            _add(c, {"*": len(items), f"kind:{job.kind.value}": len(items)})
            _add(c, {f"user:{u}": n for u, n in per_user.items()})

    async def claim(self, kind: JobKind, limit: int, lease_seconds: float) -> list[Claimed]:
        return await self._run(self._claim, kind, limit, lease_seconds)

    def _claim(self, kind: JobKind, limit: int, lease_seconds: float) -> list[Claimed]:
        now = self._clock()
        with self._tx() as c:
            rows = c.execute(
                "SELECT seq, job_id, idx, user_id, payload, attempts, enqueued_at FROM items"
                " WHERE kind = ? AND state = 'pending' AND available_at <= ?"
                " ORDER BY available_at, seq LIMIT ?",
                (kind.value, now, limit),
            ).fetchall()
            c.executemany(
                "UPDATE items SET state = 'leased', attempts = attempts + 1, lease_until = ?"
                " WHERE seq = ?",
                [(now + lease_seconds, r[0]) for r in rows],
            )
        return [Claimed(UUID(r[1]), r[2], kind, r[3], r[4], r[5] + 1, _at(r[6])) for r in rows]

    async def finish(self, outcomes: Sequence[ItemOutcome]) -> None:
        if outcomes:
            await self._run(self._finish, outcomes)

    def _finish(self, outcomes: Sequence[ItemOutcome]) -> None:
        now = self._clock()
        jobs: dict[str, list[int]] = {}
        gone: Counter[str] = Counter()
        with self._tx() as c:
            for o in outcomes:
                key = (str(o.job_id), o.index)
                row = c.execute(
                    "SELECT kind, user_id FROM items"
                    " WHERE job_id = ? AND idx = ? AND state = 'leased'",
                    key,
                ).fetchone()
                if row is None:
                    continue  # already answered (a lease that ran out, claimed again)
                if o.state is ItemState.PENDING:
                    c.execute(
                        "UPDATE items SET state = 'pending', lease_until = NULL,"
                        " available_at = ?, attempts = attempts - ?, error_code = ?, error = ?"
                        " WHERE job_id = ? AND idx = ?",
                        (now + o.delay, 0 if o.counts else 1, o.error_code, o.error, *key),
                    )
                    continue
                done = o.state is ItemState.DONE
                c.execute(
                    "UPDATE items SET state = ?, lease_until = NULL, finished_at = ?,"
                    " memory_id = ?, detail = ?, error_code = ?, error = ?,"
                    " payload = CASE WHEN ? THEN NULL ELSE payload END"
                    " WHERE job_id = ? AND idx = ?",
                    (o.state.value, now, str(o.memory_id) if o.memory_id else None, o.detail,
                     o.error_code, o.error, done, *key),
                )  # fmt: skip
                counts = jobs.setdefault(key[0], [0, 0])
                counts[0 if done else 1] += 1
                gone.update(("*", f"kind:{row[0]}", f"user:{row[1]}"))
            for job_id, (done_n, dead_n) in jobs.items():
                c.execute(
                    "UPDATE jobs SET done = done + ?, dead = dead + ?, updated_at = ?,"
                    " finished_at = CASE WHEN done + dead + ? + ? >= total THEN ? END"
                    " WHERE id = ?",
                    (done_n, dead_n, now, done_n, dead_n, now, job_id),
                )
            _add(c, {name: -n for name, n in gone.items()})

    async def retry(self, job_id: UUID, index: int | None = None) -> int:
        return await self._run(self._retry, job_id, index)

    def _retry(self, job_id: UUID, index: int | None) -> int:
        now = self._clock()
        where = "job_id = ? AND state = 'dead'" + (" AND idx = ?" if index is not None else "")
        args: tuple[Any, ...] = (str(job_id),) + ((index,) if index is not None else ())
        with self._tx() as c:
            rows = c.execute(f"SELECT kind, user_id FROM items WHERE {where}", args).fetchall()
            if not rows:
                return 0
            c.execute(
                "UPDATE items SET state = 'pending', attempts = 0, available_at = ?,"
                f" finished_at = NULL, error_code = NULL, error = NULL WHERE {where}",
                (now, *args),
            )
            c.execute(
                "UPDATE jobs SET dead = dead - ?, updated_at = ?, finished_at = NULL WHERE id = ?",
                (len(rows), now, str(job_id)),
            )
            back: Counter[str] = Counter()
            for kind, user_id in rows:
                back.update(("*", f"kind:{kind}", f"user:{user_id}"))
            _add(c, dict(back))
            return len(rows)

    async def purge(
        self, job_id: UUID | None = None, *, finished_before: datetime | None = None
    ) -> int:
        return await self._run(self._purge, job_id, finished_before)

    def _purge(self, job_id: UUID | None, finished_before: datetime | None) -> int:
        args: tuple[object, ...] = ()
        if job_id is not None:
            where, args = "id = ? AND finished_at IS NOT NULL", (str(job_id),)
        elif finished_before is not None:
            where, args = "finished_at < ?", (finished_before.timestamp(),)
        else:
            where = "finished_at IS NOT NULL"
        with self._tx() as c:
            ids = [r[0] for r in c.execute(f"SELECT id FROM jobs WHERE {where}", args)]
            for chunk in _chunks(ids, 500):
                marks = ",".join("?" * len(chunk))
                c.execute(f"DELETE FROM items WHERE job_id IN ({marks})", chunk)
                c.execute(f"DELETE FROM job_users WHERE job_id IN ({marks})", chunk)
                c.execute(f"DELETE FROM jobs WHERE id IN ({marks})", chunk)
            return len(ids)

    # -- reads -------------------------------------------------------------------

    async def job(self, job_id: UUID) -> Job | None:
        def read() -> Job | None:
            with self._tx() as c:
                row = c.execute(f"SELECT {_JOB} FROM jobs WHERE id = ?", (str(job_id),)).fetchone()
            return _job(row) if row else None

        return await self._run(read)

    async def items(self, job_id: UUID, offset: int, limit: int) -> list[ItemResult]:
        def read() -> list[ItemResult]:
            with self._tx() as c:
                rows = c.execute(
                    f"SELECT {_ITEM} FROM items WHERE job_id = ? AND idx >= ? ORDER BY idx LIMIT ?",
                    (str(job_id), offset, limit),
                ).fetchall()
            return [
                ItemResult(r[0], r[1], ItemState(r[2]), r[3], UUID(r[4]) if r[4] else None,
                           r[5], r[6], r[7])
                for r in rows
            ]  # fmt: skip

        return await self._run(read)

    async def jobs(self, user_id: str, limit: int, before: datetime | None = None) -> list[Job]:
        def read() -> list[Job]:
            bound = before.timestamp() if before else float("inf")
            with self._tx() as c:
                rows = c.execute(
                    f"SELECT {', '.join('j.' + f for f in _JOB.split(', '))} FROM job_users u"
                    " JOIN jobs j ON j.id = u.job_id WHERE u.user_id = ? AND u.created_at < ?"
                    " ORDER BY u.created_at DESC LIMIT ?",
                    (user_id, bound, limit),
                ).fetchall()
            return [_job(r) for r in rows]

        return await self._run(read)

    async def dead(self, user_id: str | None, limit: int) -> list[DeadItem]:
        def read() -> list[DeadItem]:
            mine = " AND user_id = ?" if user_id is not None else ""
            args = (user_id, limit) if user_id is not None else (limit,)
            with self._tx() as c:
                rows = c.execute(
                    "SELECT job_id, idx, kind, user_id, attempts, error_code, error, finished_at"
                    f" FROM items WHERE state = 'dead'{mine} ORDER BY finished_at DESC LIMIT ?",
                    args,
                ).fetchall()
            return [
                DeadItem(UUID(r[0]), r[1], JobKind(r[2]), r[3], r[4], r[5] or "error",
                         r[6] or "", _at(r[7]))
                for r in rows
            ]  # fmt: skip

        return await self._run(read)

    async def depth(self) -> dict[JobKind, int]:
        def read() -> dict[JobKind, int]:
            with self._tx() as c:
                return {k: _counter(c, f"kind:{k.value}") for k in JobKind}

        return await self._run(read)


class _Tx:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (fsynced), rolled back on any error."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        self.conn.execute("COMMIT" if exc is None else "ROLLBACK")


def _counter(c: sqlite3.Connection, name: str) -> int:
    row = c.execute("SELECT n FROM counters WHERE name = ?", (name,)).fetchone()
    return int(row[0]) if row else 0


def _add(c: sqlite3.Connection, deltas: dict[str, int]) -> None:
    c.executemany(
        "INSERT INTO counters VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET n = n + excluded.n",
        [(name, n) for name, n in deltas.items() if n],
    )
    c.execute("DELETE FROM counters WHERE n <= 0")


def _chunks(values: list[str], size: int) -> list[list[str]]:
    return [values[i : i + size] for i in range(0, len(values), size)]
