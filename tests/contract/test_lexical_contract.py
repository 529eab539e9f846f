"""The lexical index on every store (conftest's ``open_store``): it follows every write
path, searches only the asking user's live memories, honours filters, and a copy or
restore of whole records rebuilds it. ``occurred_at`` is kept and filtered on too."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from membank_server.domain.model import (
    Memory,
    MemoryRecord,
    SearchFilter,
    VectorQuery,
    content_hash,
)
from membank_server.domain.ports import MemoryStore
from membank_server.lexical import SnowballAnalyzer
from membank_server.services.storage_ops import copy_store
from membank_server.storage.edge import EdgeStore

__all__: list[str] = []

Records = Callable[..., MemoryRecord]
_ANALYZER = SnowballAnalyzer()


def _now() -> datetime:
    return datetime.now(UTC)


def _ask(user_id: str, text: str, **filters: Any) -> VectorQuery:
    return VectorQuery(
        user_id, [], 20, _now(), filters=SearchFilter(**filters), terms=_ANALYZER.terms(text)
    )


async def _found(store: MemoryStore, user_id: str, text: str, **filters: Any) -> list[str]:
    return [h.memory.content for h in await store.search_lexical(_ask(user_id, text, **filters))]


def _changed(r: MemoryRecord, content: str) -> MemoryRecord:
    m = r.memory
    memory = replace(m, content=content, version=m.version + 1, content_hash=content_hash(content))
    return replace(r, memory=memory, history=())


async def test_lexical_search_follows_create_batch_update_delete_and_erase(
    store: MemoryStore, new_record: Records
) -> None:
    one = new_record("alice", content="Zbigniew plays the theremin on Tuesdays")
    batch = [
        new_record("alice", content="the flat in Lisbon has a blue door"),
        new_record("alice", content="flight LH1234 lands at 07:45"),
        new_record("bob", content="Zbigniew is bob's theremin teacher"),
    ]
    await store.upsert([one])
    await store.upsert(batch)
    assert await _found(store, "alice", "who plays the theremin?") == [one.memory.content]
    assert await _found(store, "alice", "Lisbon") == [batch[0].memory.content]
    assert await _found(store, "alice", "LH1234") == [batch[1].memory.content]
    # Another user's memory with the same terms is never found.
    assert await _found(store, "bob", "theremin") == [batch[2].memory.content]

    # An update replaces the terms: the old word no longer finds it, the new one does.
    cello = _changed(one, "Zbigniew plays the cello on Tuesdays")
    await store.upsert([cello])
    assert await _found(store, "alice", "theremin") == []
    assert await _found(store, "alice", "cello") == [cello.memory.content]

    # A delete (tombstone) leaves the index, and so does an erased user.
    await store.upsert([replace(cello, deleted_at=_now())])
    assert await _found(store, "alice", "cello Zbigniew") == []
    assert await store.delete_user("bob") == 1
    assert await _found(store, "bob", "theremin") == []
    assert await _found(store, "alice", "Lisbon door") == [batch[0].memory.content]


async def test_lexical_search_ranks_by_terms_and_honours_filters(
    store: MemoryStore, new_record: Records
) -> None:
    week = datetime(2024, 5, 6, tzinfo=UTC)
    records = [
        new_record(
            "alice",
            content=text,
            agent_id=agent,
            expires_at=expires,
        )
        for text, agent, expires in (
            ("Maya adopted a greyhound called Pickle", "a1", None),
            ("the greyhound races were loud", "a2", None),
            ("Pickle the greyhound loves Maya", "a1", _now() - timedelta(seconds=1)),
        )
    ]
    records = [
        replace(r, memory=replace(r.memory, occurred_at=week + timedelta(days=i)))
        for i, r in enumerate(records)
    ]
    await store.upsert(records)
    first, second = records[0].memory.content, records[1].memory.content
    # The expired one is gone; the one holding more of the query's terms comes first.
    assert await _found(store, "alice", "Maya's greyhound Pickle") == [first, second]
    assert await _found(store, "alice", "greyhound", agent_id="a2") == [second]
    after = week + timedelta(hours=12)
    assert await _found(store, "alice", "greyhound", occurred_after=after) == [second]
    assert await _found(store, "alice", "greyhound", occurred_before=after) == [first]
    # Only stop words: nothing to match.
    assert await _found(store, "alice", "what was it?") == []
    got = await store.get("alice", [records[0].memory.id])
    assert got[records[0].memory.id].memory.occurred_at == week


async def test_occurred_at_filters_dense_search_too(
    store: MemoryStore, new_record: Records, unit: Callable[..., list[float]]
) -> None:
    old, new, undated = (new_record("alice", unit(1)) for _ in range(3))
    old = replace(old, memory=replace(old.memory, occurred_at=datetime(2020, 1, 1, tzinfo=UTC)))
    new = replace(new, memory=replace(new.memory, occurred_at=datetime(2024, 1, 1, tzinfo=UTC)))
    await store.upsert([old, new, undated])
    since = SearchFilter(occurred_after=datetime(2023, 1, 1, tzinfo=UTC))
    hits = await store.search(VectorQuery("alice", unit(1), 10, _now(), filters=since))
    assert [h.memory.id for h in hits] == [new.memory.id]
    listed = {m.id: m for m in (await store.list_page("alice", now=_now(), limit=10)).items}
    assert listed[old.memory.id].occurred_at == old.memory.occurred_at
    assert listed[undated.memory.id].occurred_at is None


async def test_whole_records_written_again_rebuild_the_lexical_index(
    open_store: Callable[..., MemoryStore], new_record: Records, tmp_path: Path
) -> None:
    """What a restore and ``storage reindex`` do: scan, then upsert whole records."""
    store = open_store()
    await store.start()
    records = [new_record("alice", content=f"note {i} about the Kraków trip") for i in range(3)] + [
        new_record("alice", content="gone", deleted_at=_now())
    ]
    await store.upsert(records)
    scanned, _ = await store.scan(None, 100)
    assert all(r.terms is None for r in scanned)

    # Into another store (a copy), then back into this one after a drop (a restore).
    edge = EdgeStore(tmp_path / "copy", dimension=len(records[0].vector))
    await edge.start()
    assert (await copy_store(store, edge))["records"] == 4
    assert len(await _found(edge, "alice", "krakow trip kraków")) == 3
    await edge.aclose()

    await store.drop()
    await store.start()
    assert await _found(store, "alice", "Kraków") == []
    await store.upsert(scanned)
    assert len(await _found(store, "alice", "Kraków trip")) == 3
    assert await _found(store, "alice", "gone") == []
    await store.aclose()


async def test_a_hit_is_the_whole_memory(store: MemoryStore, new_record: Records) -> None:
    rec = new_record("alice", content="the piano tuner comes on the 14th", metadata={"k": 1})
    await store.upsert([rec])
    (hit,) = await store.search_lexical(_ask("alice", "14th piano"))
    assert isinstance(hit.memory, Memory) and hit.memory == rec.memory
    assert hit.score > 0


async def test_rank_is_the_search_without_reading_memories(
    store: MemoryStore, new_record: Records, unit: Callable[..., list[float]]
) -> None:
    """What a fused search ranks by: the same ids, order and scores as the searches,
    the asking user's live memories only, filters honoured."""
    mine = [
        new_record("alice", unit(i), content=" ".join(["kiwi"] * i + ["jam"]), agent_id="a")
        for i in range(1, 7)
    ]
    other_agent = new_record("alice", unit(7), content="kiwi kiwi kiwi jam", agent_id="b")
    theirs = new_record("bob", unit(8), content="kiwi kiwi kiwi kiwi kiwi jam", agent_id="a")
    gone = new_record("alice", unit(9), content="kiwi kiwi jam", agent_id="a")
    await store.upsert([*mine, other_agent, theirs, replace(gone, deleted_at=_now())])
    query = VectorQuery(
        "alice", unit(3), 4, _now(), filters=SearchFilter(agent_id="a"), terms=("kiwi", "jam")
    )
    for lexical in (False, True):
        searched = await (store.search_lexical(query) if lexical else store.search(query))
        ranked = await store.rank(query, lexical=lexical)
        assert len(searched) == 4
        assert [key for key, _ in ranked] == [h.memory.id for h in searched]
        assert [score for _, score in ranked] == pytest.approx([h.score for h in searched])
        assert {key for key, _ in ranked} <= {r.memory.id for r in mine}
    assert await store.rank(replace(query, terms=()), lexical=True) == []
