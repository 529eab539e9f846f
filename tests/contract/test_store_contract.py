"""The MemoryStore contract: the same behaviour from every store (see conftest.py)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from membank_server.domain.errors import ConfigError, StorageUnavailable
from membank_server.domain.model import (
    MemoryRecord,
)
from membank_server.domain.ports import MemoryStore
from tests.contract.store_support import Records, Unit, list_all, utc_now, vector_query

__all__: list[str] = []


# -- records -----------------------------------------------------------------


async def test_upsert_then_get_returns_the_whole_record(
    store: MemoryStore, new_record: Records
) -> None:
    rec = new_record(
        "alice",
        metadata={"topic": "food", "n": 3, "score": 2.5, "pinned": True},
        agent_id="planner",
        session_id="s1",
        expires_at=utc_now() + timedelta(days=30),
        version=3,
        idempotency="digest-1",
    )
    await store.upsert([rec])

    got = await store.get("alice", [rec.memory.id, uuid4()])

    assert list(got) == [rec.memory.id]
    found = got[rec.memory.id]
    assert found.memory == rec.memory
    assert found.history == ()  # history is read on its own, never with the record
    assert await store.history("alice", rec.memory.id) == rec.history
    assert len(rec.history) == 3
    assert found.idempotency == "digest-1"
    assert found.deleted_at is None
    assert found.vector == pytest.approx(rec.vector, abs=1e-5)


async def test_a_record_is_invisible_to_other_users(
    store: MemoryStore, new_record: Records
) -> None:
    mine, theirs = new_record("alice"), new_record("bob")
    await store.upsert([mine, theirs])

    assert await store.get("bob", [mine.memory.id]) == {}
    assert list(await store.get("alice", [mine.memory.id, theirs.memory.id])) == [mine.memory.id]
    assert await store.owners([mine.memory.id, theirs.memory.id, uuid4()]) == {
        mine.memory.id: "alice",
        theirs.memory.id: "bob",
    }


async def test_upsert_replaces_the_whole_record(store: MemoryStore, new_record: Records) -> None:
    first = new_record("alice", content="old", metadata={"a": 1}, agent_id="x")
    second = new_record("alice", id=first.memory.id, content="new", version=2)
    await store.upsert([first])
    await store.upsert([second])

    got = (await store.get("alice", [first.memory.id]))[first.memory.id]

    assert got.memory == second.memory
    assert got.memory.agent_id is None
    assert await store.history("alice", first.memory.id) == second.history


async def test_empty_inputs_are_harmless(store: MemoryStore) -> None:
    await store.upsert([])
    assert await store.get("alice", []) == {}
    assert await store.owners([]) == {}
    assert await store.find_by_hash([], utc_now()) == {}


async def test_a_tombstone_is_kept_but_never_listed_searched_counted_or_matched(
    store: MemoryStore, new_record: Records, unit: Unit
) -> None:
    live = new_record("alice", unit(1), content="live")
    gone = new_record("alice", unit(1), content="gone", deleted_at=utc_now(), version=2)
    await store.upsert([live, gone])

    got = await store.get("alice", [gone.memory.id])
    assert got[gone.memory.id].deleted_at == gone.deleted_at
    assert await store.history("alice", gone.memory.id) == gone.history
    assert [m.id for m in await list_all(store, "alice")] == [live.memory.id]
    hits = await store.search(vector_query("alice", unit(1)))
    assert [h.memory.id for h in hits] == [live.memory.id]
    assert await store.count("alice") == 1
    assert await store.count() == 1
    pairs = [("alice", live.memory.content_hash), ("alice", gone.memory.content_hash)]
    assert list(await store.find_by_hash(pairs, utc_now())) == [pairs[0]]


async def test_find_by_hash_matches_only_live_pairs_of_the_right_user(
    store: MemoryStore, new_record: Records
) -> None:
    a_x = new_record("alice", content="x")
    a_y = new_record("alice", content="y")
    b_x = new_record("bob", content="x")
    b_z = new_record("bob", content="z", deleted_at=utc_now())
    a_w = new_record("alice", content="w", expires_at=utc_now() - timedelta(hours=1))
    await store.upsert([a_x, a_y, b_x, b_z, a_w])
    h = {r.memory.content: r.memory.content_hash for r in (a_x, a_y, b_z, a_w)}

    found = await store.find_by_hash(
        [
            ("alice", h["x"]),
            ("alice", h["y"]),
            ("bob", h["x"]),
            ("bob", h["z"]),
            ("alice", h["z"]),
            ("carol", h["x"]),
            ("alice", h["w"]),
            ("bob", h["y"]),
        ],
        utc_now(),
    )

    assert found == {
        ("alice", h["x"]): a_x.memory,
        ("alice", h["y"]): a_y.memory,
        ("bob", h["x"]): b_x.memory,
    }


# -- list --------------------------------------------------------------------


async def test_list_pages_through_every_memory_once_in_id_order(
    store: MemoryStore, new_record: Records
) -> None:
    mine = [new_record("alice") for _ in range(250)]
    theirs = [new_record("bob") for _ in range(30)]
    await store.upsert(mine + theirs)

    seen: list[UUID] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await store.list_page("alice", now=utc_now(), limit=40, cursor=cursor)
        pages += 1
        assert len(page.items) <= 40
        assert all(m.user_id == "alice" for m in page.items)
        seen.extend(m.id for m in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
        assert pages < 20, "the cursor does not advance"

    assert seen == sorted(r.memory.id for r in mine)
    assert pages == 7


async def test_list_filters_by_agent_and_session(store: MemoryStore, new_record: Records) -> None:
    recs = [
        new_record("alice", agent_id="planner", session_id="s1"),
        new_record("alice", agent_id="planner", session_id="s2"),
        new_record("alice", agent_id="coder", session_id="s1"),
        new_record("alice"),
        new_record("bob", agent_id="planner", session_id="s1"),
    ]
    await store.upsert(recs)

    def ids(*picked: MemoryRecord) -> list[UUID]:
        return sorted(r.memory.id for r in picked)

    async def listed(**kwargs: Any) -> list[UUID]:
        return [m.id for m in await list_all(store, "alice", **kwargs)]

    assert await listed() == ids(*recs[:4])
    assert await listed(agent_id="planner") == ids(recs[0], recs[1])
    assert await listed(session_id="s1") == ids(recs[0], recs[2])
    assert await listed(agent_id="planner", session_id="s1") == ids(recs[0])
    assert await listed(agent_id="nobody") == []


# -- expiry, deletion, counting ------------------------------------------------


async def test_expired_memories_are_hidden_then_purged(
    store: MemoryStore, new_record: Records, unit: Unit
) -> None:
    now = utc_now()
    live = new_record("alice", unit(1), expires_at=now + timedelta(days=1))
    forever = new_record("alice", unit(1))
    old = new_record("alice", unit(1), expires_at=now - timedelta(hours=1))
    old_bob = new_record("bob", unit(1), expires_at=now - timedelta(minutes=1))
    await store.upsert([live, forever, old, old_bob])

    assert {m.id for m in await list_all(store, "alice")} == {live.memory.id, forever.memory.id}
    hits = await store.search(vector_query("alice", unit(1)))
    assert {h.memory.id for h in hits} == {live.memory.id, forever.memory.id}
    assert await store.count("alice") == 2
    assert await store.count("bob") == 0
    assert await store.count() == 2

    assert await store.purge_expired(now) == 2
    assert await store.get("alice", [old.memory.id]) == {}
    assert await store.get("bob", [old_bob.memory.id]) == {}
    assert list(await store.get("alice", [live.memory.id])) == [live.memory.id]
    assert await store.purge_expired(now) == 0
    assert await store.count() == 2


async def test_delete_user_erases_everything_of_that_user_only(
    store: MemoryStore, new_record: Records
) -> None:
    alice = [new_record("alice") for _ in range(3)]
    alice_gone = new_record("alice", deleted_at=utc_now())
    bob = [new_record("bob") for _ in range(2)]
    await store.upsert([*alice, alice_gone, *bob])
    alice_ids = [r.memory.id for r in [*alice, alice_gone]]

    assert await store.delete_user("alice") == 3

    assert await store.get("alice", alice_ids) == {}
    assert await store.owners(alice_ids) == {}
    assert await store.count("alice") == 0
    assert await store.count("bob") == 2
    assert len(await store.get("bob", [r.memory.id for r in bob])) == 2
    assert await store.delete_user("alice") == 0


async def test_count_per_user_and_overall(store: MemoryStore, new_record: Records) -> None:
    assert await store.count() == 0
    await store.upsert([new_record("alice") for _ in range(4)])
    await store.upsert([new_record("bob") for _ in range(3)])
    await store.upsert([new_record("bob", deleted_at=utc_now())])

    assert await store.count("alice") == 4
    assert await store.count("bob") == 3
    assert await store.count("carol") == 0
    assert await store.count() == 7


# -- collection ----------------------------------------------------------------


async def test_info_describes_the_collection(
    store: MemoryStore, new_record: Records, dim: int
) -> None:
    await store.upsert([new_record("alice") for _ in range(5)])

    info = await store.info()

    assert info.backend == store.backend
    assert info.dimension == dim
    assert info.distance == "cosine"
    assert info.points == 5
    assert 0 <= info.indexed_vectors <= info.points
    assert info.segments >= 1


async def test_start_refuses_a_collection_of_another_dimension(
    open_store: Callable[..., MemoryStore], new_record: Records, dim: int, tmp_path: Path
) -> None:
    first = open_store()
    await first.start()
    kept = new_record("alice")
    await first.upsert([kept])
    await first.aclose()

    wrong = open_store(dimension=dim * 2)
    with pytest.raises(ConfigError) as caught:
        await wrong.start()
    await wrong.aclose()
    # Both sizes are named; the folder is left out, as its name may hold digits too.
    numbers = re.findall(r"\d+", str(caught.value).replace(str(tmp_path), ""))
    assert str(dim) in numbers
    assert str(dim * 2) in numbers

    again = open_store()
    await again.start()
    assert list(await again.get("alice", [kept.memory.id])) == [kept.memory.id]
    await again.aclose()


async def test_drop_removes_the_data_and_start_makes_a_fresh_collection(
    store: MemoryStore, new_record: Records
) -> None:
    rec = new_record("alice")
    await store.upsert([rec])

    await store.drop()
    await store.start()

    assert await store.get("alice", [rec.memory.id]) == {}
    assert await store.count() == 0


async def test_a_closed_store_answers_storage_unavailable(
    store: MemoryStore, new_record: Records
) -> None:
    await store.aclose()

    with pytest.raises(StorageUnavailable):
        await store.count()
    with pytest.raises(StorageUnavailable):
        await store.upsert([new_record("alice")])
