"""CollectionService: an index build started in the background, once at a time."""

from __future__ import annotations

import asyncio

from membank_server.domain.errors import StorageUnavailable
from membank_server.services.collection import CollectionService
from membank_server.services.memories import MemoryService
from membank_server.services.tasks import Background
from tests.unit.fakes import FakeEmbedder, InMemoryStore


class _GatedStore(InMemoryStore):
    """optimize() waits for the test, then answers ``changed`` or fails."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.calls = 0
        self.fail = False

    async def optimize(self) -> bool:
        self.calls += 1
        await self.gate.wait()
        if self.fail:
            raise StorageUnavailable("the index build process failed (exit 9): killed")
        return True


async def _finished(service: CollectionService) -> None:
    for _ in range(20):  # loop turns for the build's task to see the gate open
        if not service.build_status.running:
            return
        await asyncio.sleep(0)


async def test_a_build_runs_once_at_a_time_and_reports_its_outcome() -> None:
    store, tasks = _GatedStore(), Background()
    service = CollectionService(MemoryService(store, FakeEmbedder()), tasks)
    assert not service.build_status.running and service.build_status.started_at is None

    first = service.optimize_later()
    again = service.optimize_later()
    assert first.running and again is first
    await asyncio.sleep(0)
    assert store.calls == 1
    store.gate.set()
    await _finished(service)
    done = service.build_status
    assert not done.running and done.changed is True and done.error is None
    assert done.finished_at is not None and done.started_at == first.started_at
    assert (await service.describe()).index_build == done

    store.gate.clear()
    store.fail = True
    assert service.optimize_later().running
    store.gate.set()
    await _finished(service)
    failed = service.build_status
    assert store.calls == 2 and not failed.running and failed.changed is None
    assert failed.error == "the index build process failed (exit 9): killed"
    await tasks.aclose()
