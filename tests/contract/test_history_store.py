"""The history stores (SQLite file, PostgreSQL schema): one contract, both adapters.

What the sampler and the admin endpoints rely on: samples round-trip, the first
sample of a moment wins (several workers write), windows and tuning events come
back in order, old samples go, a secret is made once; and the SQLite file is the
one ``membank capacity plan --history FILE`` reads.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from membank_cli.capacity.sqlite import SqliteHistory
from membank_server.domain.capacity import SQLITE_SCHEMA, Sample
from membank_server.domain.observe import HistoryStore, RequestWindow, TuningEvent
from membank_server.history.pg import PgHistoryStore
from membank_server.history.sqlite import SqliteHistoryStore

T0 = datetime(2026, 11, 1, 12, tzinfo=UTC)


def _sample(minute: int, memories: int = 100) -> Sample:
    return Sample(
        at=T0 + timedelta(minutes=minute), memories=memories, users=3, disk_bytes=10_000,
        rss_bytes=400_000_000, rps=1.5, p95_ms=12.0 if minute else None, p99_ms=20.0,
        cpu_percent=3.0, errors_per_s=0.0, backend="edge", dimension=384,
        queue_depth=5 * minute, job_workers=4,
    )  # fmt: skip


def _window(minute: int, requests: int) -> RequestWindow:
    return RequestWindow(
        T0 + timedelta(minutes=minute), 60.0, requests, 1, 2, (requests, 0, 0), 1.5
    )


@pytest.fixture(params=["sqlite", "postgres"])
def make_history(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], HistoryStore]:
    if request.param == "sqlite":
        return lambda: SqliteHistoryStore(tmp_path / "history.sqlite")
    dsn, schema = request.getfixturevalue("pg_dsn"), request.getfixturevalue("pg_schema")
    return lambda: PgHistoryStore(dsn, schema=schema)


@pytest.fixture
async def history(make_history: Callable[[], HistoryStore]) -> AsyncIterator[HistoryStore]:
    store = make_history()
    await store.start()
    yield store
    await store.aclose()


async def test_samples_and_windows_round_trip_first_write_wins(history: HistoryStore) -> None:
    assert await history.add(_sample(0), _window(0, 10))
    assert await history.add(_sample(1), _window(1, 20))
    # Another worker's sample of the same moment is dropped, window and all.
    assert not await history.add(_sample(1, memories=999), _window(1, 999))
    samples = await history.samples(None)
    assert samples == [_sample(0), _sample(1)]
    assert await history.samples(T0 + timedelta(seconds=30)) == [_sample(1)]
    windows = await history.windows(T0 - timedelta(minutes=1))
    assert [w.requests for w in windows] == [10, 20]
    assert windows[0] == _window(0, 10)
    assert await history.prune(T0 + timedelta(seconds=30)) == 1
    assert await history.samples(None) == [_sample(1)]
    assert [w.requests for w in await history.windows(T0 - timedelta(days=1))] == [20]


async def test_tuning_journal_keeps_order_and_the_last_ones(history: HistoryStore) -> None:
    for i, action in enumerate(["session", "proposed", "applied", "kept", "ended"]):
        at = T0 + timedelta(seconds=i)
        event = TuningEvent(at, "tune-1", action, "cache.l1_max_entries", 2.0, 1002.0, "p99")
        await history.add_tuning(replace(event, before=170.0, after=9.5, note=f"step {i}"))
    events = await history.tuning(3)
    assert [e.action for e in events] == ["applied", "kept", "ended"]
    assert events[1].before == 170.0 and events[1].at == T0 + timedelta(seconds=3)


async def test_a_secret_is_made_once_and_shared(
    history: HistoryStore, make_history: Callable[[], HistoryStore]
) -> None:
    first = await history.secret("tenant-pseudonyms")
    other = make_history()  # another worker or instance
    await other.start()
    try:
        assert await other.secret("tenant-pseudonyms") == first
    finally:
        await other.aclose()
    assert len(first) == 32 and await history.secret("something-else") != first


async def test_the_sqlite_history_is_what_capacity_plan_reads(tmp_path: Path) -> None:
    store = SqliteHistoryStore(tmp_path / "h.sqlite")
    await store.start()
    try:
        await asyncio.gather(*(store.add(_sample(m), _window(m, m)) for m in range(3)))
    finally:
        await store.aclose()
    read = await SqliteHistory(tmp_path / "h.sqlite").samples(None)
    assert read == [_sample(0), _sample(1), _sample(2)]


async def test_a_history_from_before_the_queue_columns_is_read_and_migrated(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.sqlite"
    old_schema = re.sub(r",\s*queue_depth[^,]*,\s*job_workers[^\n]*", "", SQLITE_SCHEMA)
    assert "queue_depth" not in old_schema
    old = _sample(0)
    with closing(sqlite3.connect(path)) as db, db:
        db.execute(old_schema)
        db.execute(
            "INSERT INTO samples VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (old.at.timestamp(), 100, 3, 10_000, 400_000_000, 1.5, None, 20.0, 3.0, 0.0,
             "edge", 384),
        )  # fmt: skip
    # capacity plan reads it as it is (read-only): no queue figures, 0.
    as_before = replace(old, queue_depth=0, job_workers=0)
    assert await SqliteHistory(path).samples(None) == [as_before]
    # A server opening it adds the columns and writes new samples in full.
    store = SqliteHistoryStore(path)
    await store.start()
    try:
        assert await store.add(_sample(1), _window(1, 1))
        assert await store.samples(None) == [as_before, _sample(1)]
    finally:
        await store.aclose()
