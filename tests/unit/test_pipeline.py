"""The embedding batcher, the worker pools' scaling, the job service and the handlers,
over fakes (no I/O)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from membank_server.domain.errors import InvalidInput, QueueFull, TooLarge
from membank_server.domain.jobs import Claimed, ItemOutcome, ItemState, Job, JobItem, JobKind
from membank_server.services._job_payloads import decode_memory, encode_memory
from membank_server.services.batcher import BatchingEmbedder
from membank_server.services.handlers import EmbedStoreHandler
from membank_server.services.inputs import Limits, NewMemory
from membank_server.services.jobs import JobLimits, JobService
from membank_server.services.memories import MemoryService
from membank_server.services.workers import PoolConfig, Wakeup, WorkerPool, Workers
from tests.unit.fakes import FakeEmbedder, InMemoryStore
from tests.unit.pipeline_fakes import InMemoryJobQueue


class Recorded:
    """Telemetry that keeps the pool sizes and batch sizes it was told."""

    def __init__(self) -> None:
        self.pools: list[tuple[str, int, int]] = []
        self.batches: list[tuple[str, int]] = []

    def job_pool(self, kind: str, workers: int, waiting: int) -> None:
        self.pools.append((kind, workers, waiting))

    def job_batch(self, kind: str, items: int, waited: float) -> None:
        return None

    def job_items(self, kind: str, outcome: str, count: int) -> None:
        return None

    def embed_batch(self, lane: str, texts: int, waited: float) -> None:
        self.batches.append((lane, texts))

    def __getattr__(self, name: str) -> object:
        return lambda *args: None


# -- the batcher -------------------------------------------------------------------


async def test_concurrent_small_calls_share_one_embedder_call() -> None:
    inner = FakeEmbedder()
    batcher = BatchingEmbedder(inner, max_texts=64, max_wait=0.05)
    texts = [f"query {i}" for i in range(8)]
    results = await asyncio.gather(*(batcher.embed([t]) for t in texts))
    assert inner.calls == [texts]
    assert results == [await inner.embed([t]) for t in texts]


async def test_a_full_batch_goes_at_once_and_large_calls_go_straight_through() -> None:
    inner = FakeEmbedder()
    tele = Recorded()
    batcher = BatchingEmbedder(inner, max_texts=16, max_wait=60.0, telemetry=tele)  # type: ignore[arg-type]
    calls = [batcher.embed([f"t{i}-{j}" for j in range(8)]) for i in range(2)]
    out = await asyncio.wait_for(asyncio.gather(*calls), 5)
    assert [len(v) for v in out] == [8, 8]
    assert tele.batches == [("bulk", 16)]
    await batcher.embed([f"big {i}" for i in range(16)])
    assert [len(c) for c in inner.calls] == [16, 16]


async def test_one_bad_text_fails_its_own_call_only() -> None:
    inner = FakeEmbedder()
    batcher = BatchingEmbedder(inner, max_texts=64, max_wait=0.02)
    good = asyncio.ensure_future(batcher.embed(["fine"]))
    with pytest.raises(InvalidInput):
        await batcher.embed(["   "])
    assert len(await good) == 1


async def test_an_embedder_failure_reaches_every_caller_of_the_batch() -> None:
    class Broken(FakeEmbedder):
        async def embed(self, texts: Sequence[str]) -> list[list[float]]:
            raise RuntimeError("model crashed")

    batcher = BatchingEmbedder(Broken(), max_texts=64, max_wait=0.02)
    results = await asyncio.gather(
        *(batcher.embed([f"q{i}"]) for i in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)


# -- worker pools --------------------------------------------------------------------


class Blocking:
    """A handler that holds its items until released, then answers them done."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def handle(self, items: list[Claimed]) -> list[ItemOutcome]:
        await self.release.wait()
        return [ItemOutcome(c.job_id, c.index, ItemState.DONE) for c in items]


async def _backlog(queue: InMemoryJobQueue, n: int) -> None:
    now = datetime.now(UTC)
    job = Job(uuid4(), JobKind.EMBED, ("u",), now, now, n)
    await queue.submit(job, [JobItem("u", b"x")] * n, JobLimits().queue_limits())


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_pool_grows_to_max_under_a_backlog_and_shrinks_back_when_idle() -> None:
    queue, handler, tele = InMemoryJobQueue(), Blocking(), Recorded()
    pool = WorkerPool(
        JobKind.EMBED, handler, queue, PoolConfig(min=1, max=8, batch=10),
        wakeup=Wakeup(), lease_seconds=60, max_attempts=3, telemetry=tele,  # type: ignore[arg-type]
    )  # fmt: skip
    workers = Workers(queue, {JobKind.EMBED: pool}, queue_max_items=1_000_000)
    await workers.start()
    await _backlog(queue, 1000)
    sizes = []
    for _ in range(6):
        await _settle()
        sizes.append((await workers.tick())[JobKind.EMBED])
    assert sizes == [2, 3, 5, 8, 8, 8]
    assert pool.busy == 8
    handler.release.set()
    for _ in range(200):  # each worker takes and answers its batches (no clock involved)
        await _settle()
    assert (await queue.depth())[JobKind.EMBED] == 0
    shrinking = []
    for _ in range(6):
        await _settle()
        shrinking.append((await workers.tick())[JobKind.EMBED])
    assert shrinking == [5, 3, 2, 1, 1, 1]
    seen = [workers for kind, workers, _ in tele.pools if kind == "embed_store"]
    assert max(seen) == 8 and seen[-1] == 1
    await workers.aclose()


async def test_a_pool_stopped_mid_batch_gives_its_items_back() -> None:
    queue = InMemoryJobQueue()
    pool = WorkerPool(
        JobKind.EMBED, Blocking(), queue, PoolConfig(min=1, max=1, batch=3),
        wakeup=Wakeup(), lease_seconds=60, max_attempts=3,
    )  # fmt: skip
    workers = Workers(queue, {JobKind.EMBED: pool}, queue_max_items=100)
    await _backlog(queue, 5)
    await workers.start()
    await _settle()
    assert pool.busy == 1
    await workers.aclose()
    states = [(v[3], v[4]) for v in queue.items.values()]
    assert states == [(ItemState.PENDING, 0)] * 5


async def test_a_nearly_full_queue_grows_a_pool_whatever_its_load() -> None:
    queue, tele = InMemoryJobQueue(), Recorded()
    pool = WorkerPool(
        JobKind.EXTRACT, Blocking(), queue, PoolConfig(min=1, max=4, batch=1_000_000),
        wakeup=Wakeup(), lease_seconds=60, max_attempts=3, telemetry=tele,  # type: ignore[arg-type]
    )  # fmt: skip
    workers = Workers(queue, {JobKind.EXTRACT: pool}, queue_max_items=100)
    await workers.start()
    await _backlog(queue, 90)  # 90 % full, all of another kind
    assert (await workers.tick())[JobKind.EXTRACT] == 2
    await workers.aclose()


async def test_a_pool_with_max_zero_runs_nothing() -> None:
    queue = InMemoryJobQueue()
    pool = WorkerPool(
        JobKind.EMBED, Blocking(), queue, PoolConfig(min=0, max=0, batch=1),
        wakeup=Wakeup(), lease_seconds=60, max_attempts=3,
    )  # fmt: skip
    workers = Workers(queue, {JobKind.EMBED: pool}, queue_max_items=10)
    await workers.start()
    await _backlog(queue, 5)
    assert (await workers.tick())[JobKind.EMBED] == 0
    await workers.aclose()


# -- the job service and the embed-store handler ----------------------------------


@pytest.fixture
def memories() -> MemoryService:
    return MemoryService(InMemoryStore(), FakeEmbedder(), Limits(batch_max_items=1000))


async def test_a_job_is_checked_whole_and_gets_its_memory_ids(memories: MemoryService) -> None:
    queue = InMemoryJobQueue()
    jobs = JobService(queue, memories, JobLimits(job_max_items=3))
    with pytest.raises(TooLarge):
        await jobs.remember_later([NewMemory("u", f"m{i}") for i in range(4)])
    with pytest.raises(InvalidInput) as bad:
        await jobs.remember_later([NewMemory("u", "ok"), NewMemory("u", " ")])
    assert bad.value.details["index"] == 1
    assert queue.jobs == {}
    job = await jobs.remember_later([NewMemory("u", "a"), NewMemory("v", "b")])
    assert job.user_ids == ("u", "v") and job.total == 2
    payloads = [decode_memory(v[2]) for v in queue.items.values()]
    assert all(p.id is not None and key is None for p, key in payloads)


async def test_an_async_write_with_an_idempotency_key_is_a_replayable_job(
    memories: MemoryService,
) -> None:
    queue = InMemoryJobQueue()
    jobs = JobService(queue, memories)
    first = await jobs.remember_later([NewMemory("u", "tea")], "key-1")
    assert (await jobs.remember_later([NewMemory("u", "tea")], "key-1")).id == first.id
    other = await jobs.remember_later([NewMemory("u", "coffee")], "key-1")
    assert other.id != first.id
    handler = EmbedStoreHandler(memories)
    claimed = await queue.claim(JobKind.EMBED, 10, 60)
    stored, reused = await handler.handle(claimed)
    assert stored.state is ItemState.DONE
    assert (reused.state, reused.error_code) == (ItemState.DEAD, "conflict")
    memory, created = await memories.remember(NewMemory("u", "tea"), "key-1")
    assert memory.id == stored.memory_id and created  # a replay answers as the first did


async def test_a_full_queue_says_when_to_come_back(memories: MemoryService) -> None:
    queue = InMemoryJobQueue()
    jobs = JobService(queue, memories, JobLimits(queue_max_items=2), drain_rate=lambda: 0.5)
    await jobs.remember_later([NewMemory("u", "a"), NewMemory("u", "b")])
    with pytest.raises(QueueFull) as full:
        await jobs.remember_later([NewMemory("u", "c")])
    assert full.value.details["retry_after"] == 2  # one item over, at 0.5 items/s


def _claimed(items: list[NewMemory]) -> list[Claimed]:
    job, now = uuid4(), datetime.now(UTC)
    return [
        Claimed(job, i, JobKind.EMBED, m.user_id, encode_memory(m), 1, now)
        for i, m in enumerate(items)
    ]


async def test_a_poison_item_dies_alone_and_a_replay_stores_nothing_twice(
    memories: MemoryService,
) -> None:
    (taken, _) = await memories.remember(NewMemory("owner", "mine"))
    items = [NewMemory("u", f"fact {i}", id=uuid4()) for i in range(3)]
    items[1] = NewMemory("u", "steals an id", id=taken.id)
    handler = EmbedStoreHandler(memories)
    outcomes = await handler.handle(_claimed(items))
    assert [o.state for o in outcomes] == [ItemState.DONE, ItemState.DEAD, ItemState.DONE]
    assert outcomes[1].error_code == "conflict"
    assert [o.memory_id for o in outcomes if o.memory_id] == [items[0].id, items[2].id]
    again = await handler.handle(_claimed([items[0], items[2]]))
    assert [o.memory_id for o in again] == [items[0].id, items[2].id]
    assert await memories.count("u") == 2
    (dead,) = await handler.handle([replace(_claimed([items[0]])[0], payload=b"\xff")])
    assert dead.state is ItemState.DEAD and dead.error_code == "invalid_payload"
