"""DataKeyRotation over EncryptedStore(InMemoryStore), with the real MemoryService and locks."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import pytest

from membank_server.domain.errors import Conflict, StorageUnavailable
from membank_server.domain.model import MemoryRecord
from membank_server.security.crypto import KeyRing, add_key_to_file
from membank_server.security.encrypted_store import EncryptedStore
from membank_server.services.inputs import MemoryPatch, NewMemory, RecallQuery
from membank_server.services.memories import MemoryService
from membank_server.services.rotation import DataKeyRotation, RotationStatus
from membank_server.services.search import WordAnalyzer
from tests.unit.fakes import FakeEmbedder, InMemoryStore

__all__: list[str] = []

_Snapshot = dict[UUID, tuple[object, ...]]


class YieldingStore(InMemoryStore):
    """InMemoryStore that gives the event loop a turn on every call, as real I/O does."""

    async def scan(
        self, cursor: str | None = None, limit: int = 500
    ) -> tuple[list[MemoryRecord], str | None]:
        await asyncio.sleep(0)
        return await super().scan(cursor, limit)

    async def get(self, user_id: str, memory_ids: Sequence[UUID]) -> dict[UUID, MemoryRecord]:
        await asyncio.sleep(0)
        return await super().get(user_id, memory_ids)

    async def upsert(
        self, records: Sequence[MemoryRecord], *, claims: Collection[UUID] = ()
    ) -> None:
        await asyncio.sleep(0)
        await super().upsert(records, claims=claims)


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.json"
    assert add_key_to_file(path) == "k1"
    return path


@pytest.fixture
def inner() -> YieldingStore:
    return YieldingStore()


@pytest.fixture
def store(inner: YieldingStore, keys_file: Path) -> EncryptedStore:
    return EncryptedStore(
        inner, KeyRing.from_file(keys_file), metadata_keys=["diagnosis"], analyzer=WordAnalyzer()
    )


@pytest.fixture
def svc(store: EncryptedStore) -> MemoryService:
    return MemoryService(store, FakeEmbedder())


async def _populate(svc: MemoryService, n: int = 12) -> list[UUID]:
    ids = []
    for i in range(n):
        item = NewMemory(f"u{i % 3}", f"secret fact {i}", {"diagnosis": {"code": i}, "n": i})
        memory, _ = await svc.remember(item, idempotency_key=f"req-{i}")
        ids.append(memory.id)
    await svc.update("u0", ids[0], MemoryPatch(content="secret fact 0, revised"))
    await svc.forget("u1", ids[1])
    return ids


async def _snapshot(store: EncryptedStore) -> _Snapshot:
    records, cursor = await store.scan(None, 1000)
    assert cursor is None
    return {r.memory.id: (r.memory, r.history, r.deleted_at, r.idempotency) for r in records}


def _raw_keys(inner: InMemoryStore) -> set[str | None]:
    found: set[str | None] = set()
    for r in inner.records.values():
        found.add(KeyRing.key_of(r.memory.content))
        found.add(KeyRing.key_of(r.memory.metadata.get("diagnosis")))
        found.update(KeyRing.key_of(h.content) for h in r.history)
    return found


async def test_rotation_reseals_every_record_with_the_new_key(
    svc: MemoryService, store: EncryptedStore, inner: YieldingStore, keys_file: Path
) -> None:
    await _populate(svc)
    # A row from before encryption was turned on.
    legacy = next(iter(inner.records.values()))
    plain = (await store.get(legacy.memory.user_id, [legacy.memory.id]))[legacy.memory.id]
    plain = replace(plain, memory=replace(plain.memory, id=UUID(int=1)), idempotency=None)
    await inner.upsert([plain])
    before = await _snapshot(store)
    assert await store.key_usage() == {"k1": 12, "plaintext": 1}

    assert add_key_to_file(keys_file) == "k2"
    seen: list[RotationStatus] = []
    status = await DataKeyRotation(store, svc.locks.hold, page_size=5).run(seen.append)

    assert status.state == "done"
    assert status.active_key == "k2"
    assert (status.total, status.done) == (13, 13)
    assert status.usage_before == {"k1": 12, "plaintext": 1}
    assert status.usage_after == {"k2": 13}
    assert await store.key_usage() == {"k2": 13}
    assert _raw_keys(inner) == {"k2"}
    assert status.started_at is not None and status.finished_at is not None
    assert status.started_at <= status.finished_at and status.error is None
    assert await _snapshot(store) == before
    assert [s.done for s in seen] == sorted(s.done for s in seen)
    assert seen[0].state == "running" and seen[-1] == status
    assert store.active_key == "k2"

    again = await DataKeyRotation(store, svc.locks.hold).run()
    assert (again.state, again.total, again.done) == ("done", 0, 0)


async def test_every_service_read_keeps_working_after_rotation(
    svc: MemoryService, store: EncryptedStore, keys_file: Path
) -> None:
    ids = await _populate(svc)
    add_key_to_file(keys_file)
    await DataKeyRotation(store, svc.locks.hold).run()

    assert (await svc.get("u0", ids[0])).content == "secret fact 0, revised"
    assert [h.content for h in await svc.history("u0", ids[0])] == [
        "secret fact 0",
        "secret fact 0, revised",
    ]
    # Duplicates and idempotent replays are still recognised under the new key.
    again, created = await svc.remember(NewMemory("u2", "secret fact 2"))
    assert (again.id, created) == (ids[2], False)
    replay, created = await svc.remember(
        NewMemory("u0", "secret fact 3", {"diagnosis": {"code": 3}, "n": 3}),
        idempotency_key="req-3",
    )
    assert (replay.id, created) == (ids[3], True)
    hits = await svc.search(RecallQuery("u0", query="secret fact 6"))
    assert hits[0].memory.content == "secret fact 6"
    assert hits[0].memory.metadata == {"diagnosis": {"code": 6}, "n": 6}


async def test_reads_keep_succeeding_while_a_rotation_runs(
    svc: MemoryService, store: EncryptedStore, inner: YieldingStore, keys_file: Path
) -> None:
    ids = await _populate(svc, 30)
    expected = await _snapshot(store)
    add_key_to_file(keys_file)
    task = asyncio.create_task(DataKeyRotation(store, svc.locks.hold, page_size=4).run())

    reads = 0
    mixed = False
    while not task.done():
        mixed = mixed or {"k1", "k2"} <= _raw_keys(inner)
        user = f"u{reads % 3}"
        got = await store.get(user, ids)
        assert {i: expected[i][0] for i in got} == {i: r.memory for i, r in got.items()}
        page = await svc.list_page(user, limit=100)
        assert all(m == expected[m.id][0] for m in page.items)
        reads += 1

    assert (await task).done == 30
    assert mixed, "the reads never overlapped the rotation"
    assert reads > 5


async def test_a_second_concurrent_run_is_a_conflict(
    svc: MemoryService, store: EncryptedStore, keys_file: Path
) -> None:
    await _populate(svc)
    add_key_to_file(keys_file)
    rotation = DataKeyRotation(store, svc.locks.hold, page_size=2)
    running = asyncio.Event()
    first = asyncio.create_task(rotation.run(lambda _: running.set()))
    await running.wait()
    assert rotation.status.state == "running"

    with pytest.raises(Conflict, match="already running"):
        await rotation.run()

    assert (await first).state == "done"
    assert (await rotation.run()).state == "done"


async def test_a_user_write_during_the_run_is_kept(
    svc: MemoryService, store: EncryptedStore, keys_file: Path
) -> None:
    ids = await _populate(svc)
    add_key_to_file(keys_file)
    wrote: list[str] = []

    @contextlib.asynccontextmanager
    async def hold_after_a_user_write(user_ids: Iterable[str]) -> AsyncIterator[None]:
        users = list(user_ids)
        if users == ["u2"] and not wrote:
            # The user gets the lock between the rotation's scan and its rewrite.
            wrote.append("u2")
            await svc.update("u2", ids[2], MemoryPatch(content="changed mid-rotation"))
        async with svc.locks.hold(users):
            yield

    status = await DataKeyRotation(store, hold_after_a_user_write).run()

    assert wrote == ["u2"]
    assert (await svc.get("u2", ids[2])).content == "changed mid-rotation"
    # The changed record is rewritten too: the user's write sealed only its new
    # version, and its older history events still need the new key.
    assert (status.total, status.done) == (12, 12)
    assert status.usage_after == {"k2": 12}


class _FailingStore(EncryptedStore):
    async def scan_stale(
        self, cursor: str | None = None, limit: int = 500
    ) -> tuple[list[MemoryRecord], str | None]:
        raise StorageUnavailable("the store went away")


async def test_a_failed_run_is_reported_and_raised(inner: YieldingStore, keys_file: Path) -> None:
    store = _FailingStore(inner, KeyRing.from_file(keys_file), analyzer=WordAnalyzer())
    days = itertools.count(1)
    rotation = DataKeyRotation(
        store,
        MemoryService(store, FakeEmbedder()).locks.hold,
        clock=lambda: datetime(2030, 1, next(days), tzinfo=UTC),
    )
    assert rotation.status == RotationStatus()

    with pytest.raises(StorageUnavailable):
        await rotation.run()

    assert rotation.status.state == "failed"
    assert rotation.status.error == "the store went away"
    assert rotation.status.started_at == datetime(2030, 1, 1, tzinfo=UTC)
    assert rotation.status.finished_at == datetime(2030, 1, 2, tzinfo=UTC)
    # A failed run does not block the next one.
    with pytest.raises(StorageUnavailable):
        await rotation.run()
