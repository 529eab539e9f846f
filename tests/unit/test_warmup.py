"""CacheWarmer over fakes: sampling, batching, the lock, the report."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from membank_server.services.inputs import NewMemory, RecallQuery
from membank_server.services.memories import MemoryService
from membank_server.services.recall_cache import RecallCache
from membank_server.services.warmup import CacheWarmer, in_sample, local_lock
from tests.unit.fakes import DictCache, DictGenerations, FakeEmbedder, InMemoryStore, ListPopular


def _service() -> tuple[MemoryService, ListPopular]:
    popular = ListPopular()
    cache = RecallCache(DictCache(), DictGenerations(), popular)
    return MemoryService(InMemoryStore(), FakeEmbedder(), recall_cache=cache), popular


def test_sample_is_stable_and_about_the_fraction() -> None:
    users = [f"user-{i}" for i in range(10_000)]
    picked = [u for u in users if in_sample(u, 0.1)]
    assert 800 < len(picked) < 1200
    assert picked == [u for u in users if in_sample(u, 0.1)]
    assert all(in_sample(u, 1.0) for u in users[:100])


async def test_warmup_replays_and_reports() -> None:
    svc, _ = _service()
    for u in ("a", "b", "c"):
        await svc.remember(NewMemory(u, "I like tea"))
        await svc.recall(RecallQuery(u, query="tea"))
    assert svc.recall_cache is not None
    await svc.recall_cache.flush()
    progressed: list[int] = []
    warmer = CacheWarmer(svc, svc.recall_cache.popular)  # type: ignore[arg-type]
    report = await warmer.run(top=10, sample=1.0, batch_size=2, progress=progressed.append)
    assert (report.selected, report.users, report.warmed, report.already_cached) == (3, 3, 3, 0)
    assert progressed == [2, 1]
    for u in ("a", "b", "c"):
        assert (await svc.recall(RecallQuery(u, query="tea")))[1] == "hit"
    again = await warmer.run(top=10, sample=1.0, batch_size=10)
    assert again.already_cached == 3 and again.warmed == 0


async def test_a_round_runs_only_where_the_lock_is_taken() -> None:
    svc, popular = _service()

    @contextlib.asynccontextmanager
    async def taken(name: str, ttl: float) -> AsyncIterator[bool]:
        yield False

    report = await CacheWarmer(svc, popular, taken).run(top=5, sample=1.0, batch_size=1)
    assert report.skipped_locked and report.selected == 0
    lock = local_lock()
    async with lock("x", 1.0) as first, lock("x", 1.0) as second:
        assert first and not second
