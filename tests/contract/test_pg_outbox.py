"""PgOutbox on the real PostgreSQL: order, head-of-line retries, one drainer at a time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import asyncpg  # type: ignore[import-untyped]
import pytest

from membank_server.domain.errors import StorageUnavailable
from membank_server.domain.model import MemoryRecord
from membank_server.storage.outbox import (
    OutboxEntry,
    PgOutbox,
    decode_records,
    delete_user_entry,
    purge_entry,
    upsert_entry,
)

__all__: list[str] = []

Records = Callable[..., MemoryRecord]


@pytest.fixture
async def outbox(pg_dsn: str, pg_schema: str) -> AsyncIterator[PgOutbox]:
    box = PgOutbox(pg_dsn, schema=pg_schema, retry_base=0.05, retry_cap=0.05)
    await box.start()
    yield box
    await box.aclose()


async def test_entries_round_trip_whole_records(outbox: PgOutbox, new_record: Records) -> None:
    recs = [new_record("alice", version=2, metadata={"n": 1, "f": 0.5}), new_record("bob")]
    await outbox.enqueue([upsert_entry(recs)])
    seen: list[OutboxEntry] = []

    async def keep(entry: OutboxEntry) -> None:
        seen.append(entry)

    report = await outbox.drain(keep)

    assert [e.op for e in report.applied] == ["upsert"]
    assert decode_records(seen[0].payload) == recs
    assert await outbox.size() == 0


async def test_a_failing_entry_holds_back_the_ones_behind_it(
    outbox: PgOutbox, new_record: Records
) -> None:
    now = datetime(2025, 5, 1, tzinfo=UTC)
    await outbox.enqueue([upsert_entry([new_record("alice")]), delete_user_entry("alice")])
    await outbox.enqueue([purge_entry(now)])
    applied: list[str] = []
    fail_next = {"delete_user"}

    async def apply(entry: OutboxEntry) -> None:
        if entry.op in fail_next:
            fail_next.discard(entry.op)
            raise StorageUnavailable("secondary down (injected)")
        applied.append(entry.op)

    first = await outbox.drain(apply)

    assert [e.op for e in first.applied] == ["upsert"]
    assert first.failed is not None
    assert first.failed.op == "delete_user"
    assert first.wait is not None
    assert first.wait > 0
    assert applied == ["upsert"]
    assert await outbox.size() == 2

    # Not due yet: nothing moves, in particular not the purge behind it.
    early = await outbox.drain(apply)
    assert early.applied == ()
    assert early.failed is None
    assert applied == ["upsert"]

    await asyncio.sleep(first.wait)
    second = await outbox.drain(apply)
    assert [(e.op, e.attempts) for e in second.applied] == [
        ("delete_user", 1),
        ("purge_expired", 0),
    ]
    assert applied == ["upsert", "delete_user", "purge_expired"]
    assert await outbox.size() == 0


async def test_the_last_error_is_kept_on_the_row(
    outbox: PgOutbox, pg_dsn: str, pg_schema: str
) -> None:
    await outbox.enqueue([delete_user_entry("alice")])

    async def refuse(entry: OutboxEntry) -> None:
        raise StorageUnavailable("secondary down (injected)")

    await outbox.drain(refuse)

    conn = await asyncpg.connect(pg_dsn)
    try:
        row = await conn.fetchrow(f'SELECT attempts, last_error FROM "{pg_schema}".memories_outbox')
    finally:
        await conn.close()
    assert row["attempts"] == 1
    assert row["last_error"] == "StorageUnavailable: secondary down (injected)"


async def test_a_bug_in_apply_rolls_the_pass_back(outbox: PgOutbox) -> None:
    await outbox.enqueue([delete_user_entry("alice"), delete_user_entry("bob")])
    calls: list[str] = []

    async def buggy(entry: OutboxEntry) -> None:
        calls.append(entry.payload["user_id"])
        if entry.payload["user_id"] == "bob":
            raise TypeError("a bug, not an outage")

    with pytest.raises(TypeError):
        await outbox.drain(buggy)

    # Nothing was deleted or marked: the next pass starts from alice again.
    assert await outbox.size() == 2
    calls.clear()

    async def fine(entry: OutboxEntry) -> None:
        calls.append(entry.payload["user_id"])

    report = await outbox.drain(fine)
    assert calls == ["alice", "bob"]
    assert [e.attempts for e in report.applied] == [0, 0]


async def test_one_drainer_at_a_time(outbox: PgOutbox, pg_dsn: str, pg_schema: str) -> None:
    other = PgOutbox(pg_dsn, schema=pg_schema)
    await other.start()
    await outbox.enqueue([delete_user_entry("alice")])
    inside, release = asyncio.Event(), asyncio.Event()

    async def slow(entry: OutboxEntry) -> None:
        inside.set()
        await release.wait()

    async def never(entry: OutboxEntry) -> None:
        raise AssertionError("a second drainer applied an entry")

    first = asyncio.create_task(outbox.drain(slow))
    await inside.wait()
    second = await other.drain(never)
    release.set()

    assert second.busy
    assert [e.op for e in (await first).applied] == ["delete_user"]
    await other.aclose()
