"""MemoryService use cases over in-memory fakes."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from membank_server.domain.errors import (
    Conflict,
    DimensionMismatch,
    InvalidInput,
    NotFound,
    PreconditionFailed,
)
from membank_server.domain.model import Event
from membank_server.domain.retrieval import RetrievalChoice, SearchMode
from membank_server.services._writes import MemoryIds
from membank_server.services.idempotency import IdempotencyIds
from membank_server.services.inputs import Limits, MemoryPatch, NewMemory, RecallQuery
from membank_server.services.memories import MemoryService
from tests.unit.fakes import FakeEmbedder, InMemoryStore


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store() -> InMemoryStore:
    return InMemoryStore()


@pytest.fixture
def embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
def svc(store: InMemoryStore, embedder: FakeEmbedder, clock: Clock) -> MemoryService:
    return MemoryService(
        store, embedder, Limits(content_max_chars=100, batch_max_items=5), clock=clock
    )


async def test_remember_then_duplicate_returns_existing(svc: MemoryService) -> None:
    m, created = await svc.remember(NewMemory("u1", "I like tea"))
    assert created and m.version == 1
    again, created_again = await svc.remember(NewMemory("u1", "  I like tea \n"))
    assert not created_again and again.id == m.id
    other, created_other = await svc.remember(NewMemory("u2", "I like tea"))
    assert created_other and other.id != m.id


async def test_idempotency_key(svc: MemoryService, store: InMemoryStore) -> None:
    item = NewMemory("u1", "I like tea", {"a": 1})
    first, c1 = await svc.remember(item, "key-1")
    replay, c2 = await svc.remember(item, "key-1")
    assert (first, c1) == (replay, c2) and c1
    assert len(store.records) == 1
    with pytest.raises(Conflict):
        await svc.remember(NewMemory("u1", "I like coffee"), "key-1")
    # A key with an id of the client's own: the id is kept, the key still tells replays.
    own = NewMemory("u1", "x", id=uuid4())
    mine, created = await svc.remember(own, "key-2")
    assert created and mine.id == own.id
    assert await svc.remember(own, "key-2") == (mine, True)
    with pytest.raises(Conflict):
        await svc.remember(replace(own, content="y"), "key-2")
    await svc.forget("u1", first.id)
    with pytest.raises(Conflict):
        await svc.remember(item, "key-1")


async def test_idempotency_ids_are_keyed_by_the_server_secret(svc: MemoryService) -> None:
    public = uuid.uuid5(UUID("6f1c9a52-3a77-4c55-9d3e-2b0c7a9e8d41"), "u1\nkey-9")
    unkeyed, _ = await svc.remember(NewMemory("u1", "a"), "key-9")
    assert unkeyed.id == public
    keyed_svc = MemoryService(svc.store, svc.embedder, idempotency=IdempotencyIds(secret=b"s" * 32))
    keyed, _ = await keyed_svc.remember(NewMemory("u1", "b"), "key-10")
    again, _ = await keyed_svc.remember(NewMemory("u1", "b"), "key-10")
    assert keyed.id == again.id
    assert keyed.id != uuid.uuid5(UUID("6f1c9a52-3a77-4c55-9d3e-2b0c7a9e8d41"), "u1\nkey-10")
    assert keyed.id.version == 5


async def test_client_id_upsert_and_ownership(svc: MemoryService) -> None:
    mid = uuid4()
    m, created = await svc.remember(NewMemory("u1", "a", id=mid))
    assert created and m.id == mid
    same, created = await svc.remember(NewMemory("u1", "a", id=mid))
    assert not created and same.version == 1
    changed, created = await svc.remember(NewMemory("u1", "b", id=mid))
    assert not created and changed.version == 2 and changed.created_at == m.created_at
    with pytest.raises(Conflict):
        await svc.remember(NewMemory("u2", "a", id=mid))


async def test_batch_validates_everything_first(
    svc: MemoryService, store: InMemoryStore, embedder: FakeEmbedder
) -> None:
    items = [NewMemory("u1", f"fact {i}") for i in range(4)] + [NewMemory("u1", "x" * 101)]
    with pytest.raises(InvalidInput) as err:
        await svc.remember_many(items)
    assert err.value.details == {"index": 4, "field": "content", "limit": 100}
    assert store.records == {} and embedder.calls == []
    with pytest.raises(InvalidInput):
        await svc.remember_many([NewMemory("u1", f"n{i}") for i in range(6)])
    with pytest.raises(DimensionMismatch) as dim:
        await svc.remember_many([NewMemory("u1", "a"), NewMemory("u1", "b", vector=[1.0])])
    assert dim.value.details["index"] == 1
    mid = uuid4()
    with pytest.raises(InvalidInput):
        await svc.remember_many([NewMemory("u1", "a", id=mid), NewMemory("u1", "b", id=mid)])


async def test_batch_embeds_once_and_dedupes_inside(
    svc: MemoryService, store: InMemoryStore, embedder: FakeEmbedder
) -> None:
    results = await svc.remember_many(
        [
            NewMemory("u1", "a"),
            NewMemory("u1", "b"),
            NewMemory("u1", "a"),
            NewMemory("u2", "a"),
            NewMemory("u1", "c", vector=[1.0] + [0.0] * 7),
        ]
    )
    assert [created for _, created in results] == [True, True, False, True, True]
    assert results[0][0].id == results[2][0].id
    assert embedder.calls == [["a", "b", "a"]]
    assert store.upserts == 1 and len(store.records) == 4


async def test_update_versions_history_and_if_match(
    svc: MemoryService, clock: Clock, embedder: FakeEmbedder
) -> None:
    m, _ = await svc.remember(NewMemory("u1", "I live in Porto"))
    clock.now += timedelta(seconds=5)
    with pytest.raises(PreconditionFailed):
        await svc.update("u1", m.id, MemoryPatch(content="x"), if_match=2)
    calls = len(embedder.calls)
    u = await svc.update("u1", m.id, MemoryPatch(metadata={"k": 1}), if_match=1)
    assert u.version == 2 and u.updated_at == clock.now and len(embedder.calls) == calls
    same = await svc.update("u1", m.id, MemoryPatch(metadata={"k": 1}))
    assert same.version == 2
    u = await svc.update("u1", m.id, MemoryPatch(content="I live in Madrid"))
    assert u.version == 3 and len(embedder.calls) == calls + 1
    with pytest.raises(NotFound):
        await svc.update("u2", m.id, MemoryPatch(content="x"))
    await svc.forget("u1", m.id)
    with pytest.raises(NotFound):
        await svc.get("u1", m.id)
    with pytest.raises(NotFound):
        await svc.forget("u1", m.id)
    events = await svc.history("u1", m.id)
    assert [(e.event, e.version) for e in events] == [
        (Event.ADD, 1),
        (Event.UPDATE, 2),
        (Event.UPDATE, 3),
        (Event.DELETE, 4),
    ]
    with pytest.raises(NotFound):
        await svc.history("u2", m.id)


async def test_expiry(svc: MemoryService, clock: Clock) -> None:
    # Already past: stored expired (as a past expiry in Redis), never read.
    gone, created = await svc.remember(
        NewMemory("u1", "b", expires_at=clock.now - timedelta(seconds=1))
    )
    assert created
    with pytest.raises(NotFound):
        await svc.get("u1", gone.id)
    with pytest.raises(InvalidInput):
        await svc.remember(NewMemory("u1", "a", expires_at=datetime(2031, 1, 1)))
    m, _ = await svc.remember(NewMemory("u1", "a", expires_at=clock.now + timedelta(hours=1)))
    assert (await svc.get("u1", m.id)).id == m.id
    clock.now += timedelta(hours=2)
    with pytest.raises(NotFound):
        await svc.get("u1", m.id)
    assert await svc.purge_expired() == 2


async def test_search_and_list_validation(svc: MemoryService) -> None:
    await svc.remember(NewMemory("u1", "I like tea"))
    dense = RetrievalChoice(mode=SearchMode.DENSE)
    hits = await svc.search(RecallQuery("u1", query="I like tea", retrieval=dense))
    assert hits[0].memory.content == "I like tea" and hits[0].score == pytest.approx(1.0)
    # Hybrid (the default): found by both retrievers, first in each.
    explain = RetrievalChoice(explain=True)
    (hit,) = await svc.search(RecallQuery("u1", query="I like tea", retrieval=explain))
    assert hit.ranks == {"dense": 1, "lexical": 1}
    assert await svc.search(RecallQuery("u2", query="I like tea")) == []
    for bad in (
        RecallQuery("u1"),
        RecallQuery("u1", "a", [1.0] * 8),
        RecallQuery("u1", "a", limit=0),
        RecallQuery("u1", " "),
    ):
        with pytest.raises(InvalidInput):
            await svc.search(bad)
    with pytest.raises(InvalidInput):
        await svc.list_page("u1", cursor="nope")
    with pytest.raises(InvalidInput):
        await svc.list_page("u1", limit=0)
    # Above the maxima: as many as the server gives, not an error.
    assert len(await svc.search(RecallQuery("u1", "a", limit=10_000))) == 1
    assert len((await svc.list_page("u1", limit=10_000)).items) == 1


async def test_forget_user(svc: MemoryService) -> None:
    for i in range(3):
        await svc.remember(NewMemory("u1", f"f{i}"))
    await svc.remember(NewMemory("u2", "f0"))
    assert await svc.forget_user("u1") == 3
    assert (await svc.list_page("u1")).items == ()
    assert len((await svc.list_page("u2")).items) == 1


def test_ids_are_uuid7() -> None:
    ids = MemoryIds()
    a, b = ids(), ids()
    assert a.version == b.version == 7 and a != b
