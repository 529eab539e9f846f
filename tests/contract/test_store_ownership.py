"""Every store: ids are taken atomically, history lives apart and is bounded, usage counts.

Runs on every backend of the contract suite (see conftest): Qdrant Edge on disk,
qdrant-client local mode, PostgreSQL + pgvector, the hybrids and the encrypted store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from membank_server.domain.errors import Conflict
from membank_server.domain.model import (
    Event,
    HistoryEvent,
    MemoryRecord,
    Usage,
    content_hash,
    stored_bytes,
)
from membank_server.domain.ports import MemoryStore
from membank_server.security.encrypted_store import EncryptedStore

Records = Callable[..., MemoryRecord]
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _event(version: int, content: str, event: Event = Event.UPDATE) -> HistoryEvent:
    return HistoryEvent(event, version, content, {"v": version}, T0 + timedelta(minutes=version))


async def test_a_claimed_id_of_another_user_is_a_conflict_and_changes_nothing(
    store: MemoryStore, new_record: Records
) -> None:
    theirs = new_record("bob", content="bob's memory")
    await store.upsert([theirs], claims={theirs.memory.id})
    mine = new_record("alice", id=theirs.memory.id, content="alice takes it")

    with pytest.raises(Conflict) as caught:
        await store.upsert([mine], claims={mine.memory.id})

    assert caught.value.details["ids"] == [str(theirs.memory.id)]
    assert await store.owners([theirs.memory.id]) == {theirs.memory.id: "bob"}
    kept = (await store.get("bob", [theirs.memory.id]))[theirs.memory.id]
    assert kept.memory == theirs.memory
    assert await store.history("bob", theirs.memory.id) == theirs.history
    assert await store.get("alice", [theirs.memory.id]) == {}


async def test_two_users_racing_for_one_id_exactly_one_wins(
    store: MemoryStore, new_record: Records
) -> None:
    for _ in range(5):
        shared = uuid4()
        a = new_record("alice", id=shared, content=f"alice {shared}")
        b = new_record("bob", id=shared, content=f"bob {shared}")
        outcomes = await asyncio.gather(
            store.upsert([a], claims={shared}),
            store.upsert([b], claims={shared}),
            return_exceptions=True,
        )
        won = [o is None for o in outcomes]
        assert sorted(won) == [False, True], outcomes
        assert all(o is None or isinstance(o, Conflict) for o in outcomes)
        winner = a if won[0] else b
        owner = winner.memory.user_id
        assert await store.owners([shared]) == {shared: owner}
        got = (await store.get(owner, [shared]))[shared]
        assert got.memory == winner.memory


async def test_history_is_read_apart_and_writes_add_events(
    store: MemoryStore, new_record: Records
) -> None:
    first = new_record("alice", content="v1")
    await store.upsert([first])
    second = replace(
        first,
        memory=replace(first.memory, content="v2", content_hash=content_hash("v2"), version=2),
        history=(_event(2, "v2"),),
    )
    await store.upsert([second])

    assert (await store.get("alice", [first.memory.id]))[first.memory.id].history == ()
    history = await store.history("alice", first.memory.id)
    assert [h.version for h in history] == [1, 2]
    assert history[-1].content == "v2"
    assert await store.history("bob", first.memory.id) == ()
    assert await store.history("alice", uuid4()) == ()
    scanned = {r.memory.id: r for r in (await store.scan(None, 100))[0]}
    assert scanned[first.memory.id].history == history


async def test_an_event_newer_than_its_record_never_shows(
    store: MemoryStore, new_record: Records
) -> None:
    # What a write that failed between its history and its record leaves behind.
    rec = new_record("alice", content="v1")
    await store.upsert([rec])
    await store.upsert([replace(rec, history=(_event(2, "never acknowledged"),))])

    assert [h.version for h in await store.history("alice", rec.memory.id)] == [1]


async def test_history_keeps_the_configured_number_of_versions(
    open_store: Callable[..., MemoryStore], new_record: Records
) -> None:
    store = open_store()
    await store.start()
    try:
        rec = new_record("alice", content="v1")
        await store.upsert([rec])
        for version in range(2, 131):
            rec = replace(
                rec,
                memory=replace(
                    rec.memory,
                    content=f"v{version}",
                    content_hash=content_hash(f"v{version}"),
                    version=version,
                ),
                history=(_event(version, f"v{version}"),),
            )
            await store.upsert([rec])
        kept = await store.history("alice", rec.memory.id)
        # The default limit: the last 100 versions.
        assert [h.version for h in kept] == list(range(31, 131))
    finally:
        await store.aclose()


async def test_erasing_a_user_erases_their_history(store: MemoryStore, new_record: Records) -> None:
    mine, theirs = new_record("alice", version=3), new_record("bob", version=2)
    await store.upsert([mine, theirs])

    await store.delete_user("alice")

    assert await store.history("alice", mine.memory.id) == ()
    assert await store.history("bob", theirs.memory.id) == theirs.history


async def test_usage_counts_live_memories_and_their_bytes(
    store: MemoryStore, new_record: Records
) -> None:
    live = [new_record("alice", content=f"memory number {i}", metadata={"k": i}) for i in range(3)]
    gone = new_record("alice", content="deleted", deleted_at=T0 + timedelta(days=1))
    other = new_record("bob", content="not alice's")
    await store.upsert([*live, gone, other])

    usage = await store.usage("alice")

    assert usage.memories == 3
    expected = sum(stored_bytes(r.memory) for r in live)
    if isinstance(store, EncryptedStore):
        assert usage.bytes > expected  # what is stored: the sealed values
    else:
        # PostgreSQL measures metadata as jsonb text, with a space after ':' and ','.
        assert expected <= usage.bytes <= expected + 8 * len(live)
    assert await store.usage("nobody") == Usage(0, 0)
