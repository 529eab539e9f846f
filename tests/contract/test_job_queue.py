"""One suite over every job queue: the SQLite file of the embedded default, the real
PostgreSQL (a schema of its own per test) and the real Redis (a key prefix of its own)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import pytest
from redis import Redis as SyncRedis

from membank_server.domain.errors import QueueFull
from membank_server.domain.jobs import (
    Claimed,
    ItemOutcome,
    ItemState,
    Job,
    JobItem,
    JobKind,
    JobQueue,
    JobStatus,
    QueueLimits,
)
from membank_server.pg import PoolSettings
from membank_server.queue.pg import PgJobQueue
from membank_server.queue.redis import RedisJobQueue
from membank_server.queue.sqlite import SqliteJobQueue

LIMITS = QueueLimits(max_items=1000, max_items_per_user=600)
QueueFactory = Callable[[], JobQueue]


@pytest.fixture(params=["local", "postgres", "redis"])
def queue_kind(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[QueueFactory]:
    """Make an unstarted queue; every call reaches the same file, schema or prefix (a
    restart of the process)."""
    prefix = f"t{uuid4().hex[:10]}:"
    if request.param == "postgres":
        dsn, schema = request.getfixturevalue("pg_dsn"), request.getfixturevalue("pg_schema")
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")

    def make() -> JobQueue:
        if request.param == "local":
            return SqliteJobQueue(tmp_path / "queue" / "jobs.sqlite3")
        if request.param == "postgres":
            return PgJobQueue(dsn, schema=schema, pool=PoolSettings(max_size=4))
        return RedisJobQueue(url, prefix=prefix)

    yield make
    if request.param == "redis":
        redis = SyncRedis.from_url(url)
        keys = list(redis.scan_iter(match=f"{prefix}*"))
        if keys:
            redis.delete(*keys)
        redis.close()


@pytest.fixture
async def make_queue(queue_kind: QueueFactory) -> AsyncIterator[QueueFactory]:
    made: list[JobQueue] = []

    def make() -> JobQueue:
        made.append(queue_kind())
        return made[-1]

    yield make
    for queue in made:
        await queue.aclose()


def _job(kind: JobKind, users: list[str], n: int) -> tuple[Job, list[JobItem]]:
    now = datetime.now(UTC)
    items = [JobItem(users[i % len(users)], f"payload {i}".encode()) for i in range(n)]
    return Job(uuid4(), kind, tuple(sorted(set(users))), now, now, n), items


def _done(c: Claimed) -> ItemOutcome:
    return ItemOutcome(c.job_id, c.index, ItemState.DONE, memory_id=UUID(int=c.index + 1))


async def test_items_are_claimed_once_and_answered(make_queue: QueueFactory) -> None:
    queue = make_queue()
    await queue.start()
    job, items = _job(JobKind.EMBED, ["alice", "bob"], 5)
    await queue.submit(job, items, LIMITS)
    assert (await queue.job(job.id)).status is JobStatus.QUEUED  # type: ignore[union-attr]
    assert (await queue.depth())[JobKind.EMBED] == 5
    first = await queue.claim(JobKind.EMBED, 3, 60)
    second = await queue.claim(JobKind.EMBED, 3, 60)
    assert await queue.claim(JobKind.EXTRACT, 3, 60) == []
    claimed = first + second
    assert sorted(c.index for c in claimed) == [0, 1, 2, 3, 4]
    assert {c.payload for c in claimed} == {i.payload for i in items}
    assert all(c.attempts == 1 and c.job_id == job.id for c in claimed)
    await queue.finish([_done(c) for c in first])
    mid = await queue.job(job.id)
    assert mid is not None and mid.status is JobStatus.RUNNING and mid.done == 3
    await queue.finish([_done(c) for c in second])
    end = await queue.job(job.id)
    assert end is not None and end.status is JobStatus.DONE and (end.done, end.dead) == (5, 0)
    results = await queue.items(job.id, 0, 10)
    assert [r.memory_id for r in results] == [UUID(int=i + 1) for i in range(5)]
    assert [r.user_id for r in results] == ["alice", "bob", "alice", "bob", "alice"]
    assert await queue.items(job.id, 3, 10) == results[3:]
    assert (await queue.depth())[JobKind.EMBED] == 0
    assert [j.id for j in await queue.jobs("bob", 10)] == [job.id]
    assert await queue.jobs("carol", 10) == []


async def test_a_finish_twice_counts_once(make_queue: QueueFactory) -> None:
    queue = make_queue()
    await queue.start()
    job, items = _job(JobKind.EMBED, ["alice"], 2)
    await queue.submit(job, items, LIMITS)
    claimed = await queue.claim(JobKind.EMBED, 10, 60)
    await queue.finish([_done(c) for c in claimed])
    await queue.finish([_done(c) for c in claimed])
    found = await queue.job(job.id)
    assert found is not None and found.done == 2


async def test_full_queue_and_full_user_refuse_a_job_whole(make_queue: QueueFactory) -> None:
    queue = make_queue()
    await queue.start()
    job, items = _job(JobKind.EMBED, ["alice"], 600)
    await queue.submit(job, items, LIMITS)
    mine, more = _job(JobKind.EMBED, ["alice"], 1)
    with pytest.raises(QueueFull) as refused:
        await queue.submit(mine, more, LIMITS)
    assert refused.value.details["user_id"] == "alice"
    others, lots = _job(JobKind.EMBED, ["bob", "carol"], 401)
    with pytest.raises(QueueFull) as full:
        await queue.submit(others, lots, LIMITS)
    assert full.value.details == {"waiting": 600, "limit": 1000}
    assert await queue.job(others.id) is None and await queue.job(mine.id) is None
    ok, fits = _job(JobKind.EMBED, ["bob"], 400)
    await queue.submit(ok, fits, LIMITS)
    assert (await queue.depth())[JobKind.EMBED] == 1000


async def test_retry_later_dead_letters_and_operator_retry(make_queue: QueueFactory) -> None:
    queue = make_queue()
    await queue.start()
    job, items = _job(JobKind.EXTRACT, ["alice"], 3)
    await queue.submit(job, items, LIMITS)
    a, b, c = sorted(await queue.claim(JobKind.EXTRACT, 3, 60), key=lambda x: x.index)
    await queue.finish(
        [
            _done(a),
            ItemOutcome(b.job_id, b.index, ItemState.DEAD, error_code="conflict", error="taken"),
            ItemOutcome(c.job_id, c.index, ItemState.PENDING, error_code="x", delay=0.0),
        ]
    )
    again = await queue.claim(JobKind.EXTRACT, 3, 60)
    assert [(x.index, x.attempts) for x in again] == [(2, 2)]
    await queue.finish([_done(again[0])])
    ended = await queue.job(job.id)
    assert ended is not None and ended.status is JobStatus.PARTIAL and ended.dead == 1
    (dead,) = await queue.dead("alice", 10)
    assert (dead.job_id, dead.index) == (job.id, 1)
    assert (dead.error_code, dead.error) == ("conflict", "taken")
    assert await queue.dead("bob", 10) == []
    assert [d.index for d in await queue.dead(None, 10)] == [1]
    assert await queue.retry(job.id) == 1
    assert await queue.dead("alice", 10) == []
    (back,) = await queue.claim(JobKind.EXTRACT, 3, 60)
    assert (back.index, back.payload) == (1, items[1].payload)
    await queue.finish([_done(back)])
    final = await queue.job(job.id)
    assert final is not None and final.status is JobStatus.DONE


async def test_a_retry_waits_its_delay(make_queue: QueueFactory) -> None:
    queue = make_queue()
    await queue.start()
    job, items = _job(JobKind.EMBED, ["alice"], 1)
    await queue.submit(job, items, LIMITS)
    (item,) = await queue.claim(JobKind.EMBED, 1, 60)
    later = ItemOutcome(item.job_id, item.index, ItemState.PENDING, delay=3600, counts=False)
    await queue.finish([later])
    assert await queue.claim(JobKind.EMBED, 1, 60) == []
    (result,) = await queue.items(job.id, 0, 1)
    assert result.state is ItemState.PENDING and result.attempts == 0


async def test_a_restart_releases_what_a_dead_process_held(make_queue: QueueFactory) -> None:
    queue = make_queue()
    await queue.start()
    job, items = _job(JobKind.EMBED, ["alice"], 4)
    await queue.submit(job, items, LIMITS)
    held = await queue.claim(JobKind.EMBED, 4, 0.5)
    assert len(held) == 4
    await queue.aclose()  # the process dies holding its leases
    await asyncio.sleep(1.2)
    reopened = make_queue()
    await reopened.start()
    # Every instance leases for the same time (the setting jobs.lease_seconds).
    again = await reopened.claim(JobKind.EMBED, 10, 0.5)
    assert sorted(c.index for c in again) == [0, 1, 2, 3]
    assert all(c.attempts == 2 for c in again)
    await reopened.finish([_done(c) for c in again])
    found = await reopened.job(job.id)
    assert found is not None and found.done == 4


async def test_purge_forgets_finished_jobs_only(make_queue: QueueFactory) -> None:
    queue = make_queue()
    await queue.start()
    done_job, items = _job(JobKind.DELETE_USER, ["alice"], 1)
    running, more = _job(JobKind.DELETE_USER, ["alice"], 1)
    await queue.submit(done_job, items, LIMITS)
    (item,) = await queue.claim(JobKind.DELETE_USER, 1, 60)
    await queue.finish([ItemOutcome(item.job_id, 0, ItemState.DEAD, error_code="e", error="x")])
    await queue.submit(running, more, LIMITS)
    assert await queue.purge(running.id) == 0
    assert await queue.purge(finished_before=datetime.now(UTC) - timedelta(hours=1)) == 0
    assert await queue.purge(done_job.id) == 1
    assert await queue.job(done_job.id) is None
    assert await queue.dead("alice", 10) == []
    assert [j.id for j in await queue.jobs("alice", 10)] == [running.id]
