"""The MemoryStore contract: the same behaviour from every store (see conftest.py)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from membank_server.domain.errors import ConfigError, StorageUnavailable
from membank_server.domain.model import (
    Memory,
    MemoryRecord,
    MetadataCondition,
    SearchFilter,
    VectorQuery,
)
from membank_server.domain.ports import MemoryStore

__all__: list[str] = []

Records = Callable[..., MemoryRecord]
Unit = Callable[..., list[float]]


def _now() -> datetime:
    return datetime.now(UTC)


def _query(user_id: str, vector: list[float], *, limit: int = 50, **kwargs: Any) -> VectorQuery:
    return VectorQuery(user_id=user_id, vector=vector, limit=limit, now=_now(), **kwargs)


async def _list_all(store: MemoryStore, user_id: str, **kwargs: Any) -> list[Memory]:
    page = await store.list_page(user_id, now=_now(), limit=1000, **kwargs)
    assert page.next_cursor is None
    return list(page.items)


# -- records -----------------------------------------------------------------


async def test_upsert_then_get_returns_the_whole_record(
    store: MemoryStore, new_record: Records
) -> None:
    rec = new_record(
        "alice",
        metadata={"topic": "food", "n": 3, "score": 2.5, "pinned": True},
        agent_id="planner",
        session_id="s1",
        expires_at=_now() + timedelta(days=30),
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
    assert await store.find_by_hash([], _now()) == {}


async def test_a_tombstone_is_kept_but_never_listed_searched_counted_or_matched(
    store: MemoryStore, new_record: Records, unit: Unit
) -> None:
    live = new_record("alice", unit(1), content="live")
    gone = new_record("alice", unit(1), content="gone", deleted_at=_now(), version=2)
    await store.upsert([live, gone])

    got = await store.get("alice", [gone.memory.id])
    assert got[gone.memory.id].deleted_at == gone.deleted_at
    assert await store.history("alice", gone.memory.id) == gone.history
    assert [m.id for m in await _list_all(store, "alice")] == [live.memory.id]
    hits = await store.search(_query("alice", unit(1)))
    assert [h.memory.id for h in hits] == [live.memory.id]
    assert await store.count("alice") == 1
    assert await store.count() == 1
    pairs = [("alice", live.memory.content_hash), ("alice", gone.memory.content_hash)]
    assert list(await store.find_by_hash(pairs, _now())) == [pairs[0]]


async def test_find_by_hash_matches_only_live_pairs_of_the_right_user(
    store: MemoryStore, new_record: Records
) -> None:
    a_x = new_record("alice", content="x")
    a_y = new_record("alice", content="y")
    b_x = new_record("bob", content="x")
    b_z = new_record("bob", content="z", deleted_at=_now())
    a_w = new_record("alice", content="w", expires_at=_now() - timedelta(hours=1))
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
        _now(),
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
        page = await store.list_page("alice", now=_now(), limit=40, cursor=cursor)
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
        return [m.id for m in await _list_all(store, "alice", **kwargs)]

    assert await listed() == ids(*recs[:4])
    assert await listed(agent_id="planner") == ids(recs[0], recs[1])
    assert await listed(session_id="s1") == ids(recs[0], recs[2])
    assert await listed(agent_id="planner", session_id="s1") == ids(recs[0])
    assert await listed(agent_id="nobody") == []


# -- search ------------------------------------------------------------------


async def test_search_returns_the_nearest_first_within_limit_and_min_score(
    store: MemoryStore, new_record: Records, unit: Unit
) -> None:
    query = unit(axes={0: 1.0})
    # Cosine to the query falls with k: 1.0, 0.89, 0.71, 0.55, 0.45.
    ladder = [new_record("alice", unit(axes={0: 1.0, 1: 0.5 * k})) for k in range(5)]
    intruders = [new_record("bob", query), new_record("bob", unit(axes={0: 1.0, 2: 0.1}))]
    await store.upsert(ladder[::-1] + intruders)

    hits = await store.search(_query("alice", query, limit=3))
    assert [h.memory.id for h in hits] == [r.memory.id for r in ladder[:3]]
    assert [h.memory for h in hits] == [r.memory for r in ladder[:3]]
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] == pytest.approx(1.0, abs=1e-4)

    above = await store.search(_query("alice", query, min_score=0.6))
    assert [h.memory.id for h in above] == [r.memory.id for r in ladder[:3]]
    assert all(h.score >= 0.6 for h in above)

    everything = await store.search(_query("alice", query, limit=50))
    assert [h.memory.id for h in everything] == [r.memory.id for r in ladder]
    assert await store.search(_query("carol", query)) == []


@dataclass(frozen=True)
class _Case:
    name: str
    filters: SearchFilter
    expect: Callable[[int], bool]


_BASE = datetime(2025, 3, 1, tzinfo=UTC)


def _meta(key: str, **kwargs: Any) -> SearchFilter:
    return SearchFilter(metadata=(MetadataCondition(key, **kwargs),))


_CASES = [
    _Case("agent", SearchFilter(agent_id="planner"), lambda i: i % 3 == 0),
    _Case("session", SearchFilter(session_id="s2"), lambda i: 6 <= i <= 10),
    _Case("created_after", SearchFilter(created_after=_BASE + timedelta(days=5)), lambda i: i >= 5),
    _Case(
        "created_before", SearchFilter(created_before=_BASE + timedelta(days=3)), lambda i: i <= 3
    ),
    _Case(
        "created_between",
        SearchFilter(
            created_after=_BASE + timedelta(days=2), created_before=_BASE + timedelta(days=4)
        ),
        lambda i: 2 <= i <= 4,
    ),
    _Case("str_equals", _meta("topic", equals="food"), lambda i: i % 3 == 0),
    _Case("int_equals", _meta("n", equals=7), lambda i: i == 7),
    _Case("float_equals", _meta("score", equals=1.25), lambda i: i == 5),
    _Case("whole_float_equals", _meta("score", equals=2.0), lambda i: i == 8),
    _Case("bool_equals_true", _meta("pinned", equals=True), lambda i: i % 2 == 0),
    _Case("bool_equals_false", _meta("pinned", equals=False), lambda i: i % 2 == 1),
    _Case("any_of_str", _meta("topic", any_of=("food", "work")), lambda i: i % 3 != 1),
    _Case("any_of_int", _meta("rank", any_of=(1, 3)), lambda i: i % 4 in (1, 3)),
    _Case("any_of_mixed", _meta("label", any_of=("odd", 4)), lambda i: i % 2 == 1 or i == 4),
    _Case("gte", _meta("n", gte=9), lambda i: i >= 9),
    _Case("lte", _meta("n", lte=2), lambda i: i <= 2),
    _Case("gte_lte_float", _meta("score", gte=0.5, lte=1.0), lambda i: 2 <= i <= 4),
    # No operator: the key is set to something (not missing, null or []).
    _Case("set", _meta("note"), lambda i: i % 4 == 2),
    _Case(
        "in_and_range",
        SearchFilter(
            metadata=(MetadataCondition("n", any_of=(1, 5, 9)), MetadataCondition("n", gte=4))
        ),
        lambda i: i in (5, 9),
    ),
    _Case(
        "combined",
        SearchFilter(
            agent_id="coder",
            metadata=(
                MetadataCondition("pinned", equals=True),
                MetadataCondition("n", lte=6),
            ),
        ),
        lambda i: i in (2, 4),
    ),
]


def _filter_dataset(new_record: Records, unit: Unit, user_id: str) -> list[MemoryRecord]:
    return [
        new_record(
            user_id,
            unit(i),
            agent_id="planner" if i % 3 == 0 else "coder",
            session_id=None if i == 11 else ("s1" if i < 6 else "s2"),
            created_at=_BASE + timedelta(days=i),
            metadata={
                "topic": ("food", "travel", "work")[i % 3],
                "n": i,
                "score": i / 4,
                "pinned": i % 2 == 0,
                "rank": i % 4,
                "label": "odd" if i % 2 else i,
                **({"note": (None, [], "x")[i % 4]} if i % 4 != 3 else {}),
            },
        )
        for i in range(12)
    ]


@pytest.mark.parametrize("case", _CASES, ids=[c.name for c in _CASES])
async def test_search_filters(
    store: MemoryStore, new_record: Records, unit: Unit, case: _Case
) -> None:
    mine = _filter_dataset(new_record, unit, "alice")
    # Another user with identical data: a filter must never widen the tenant.
    await store.upsert(mine + _filter_dataset(new_record, unit, "bob"))
    expected = {r.memory.id for i, r in enumerate(mine) if case.expect(i)}
    assert expected, "a case must select something"
    assert len(expected) < len(mine), "a case must leave something out"

    hits = await store.search(_query("alice", unit(99), filters=case.filters))

    assert {h.memory.id for h in hits} == expected
    assert len(hits) == len(expected)


# -- expiry, deletion, counting ------------------------------------------------


async def test_expired_memories_are_hidden_then_purged(
    store: MemoryStore, new_record: Records, unit: Unit
) -> None:
    now = _now()
    live = new_record("alice", unit(1), expires_at=now + timedelta(days=1))
    forever = new_record("alice", unit(1))
    old = new_record("alice", unit(1), expires_at=now - timedelta(hours=1))
    old_bob = new_record("bob", unit(1), expires_at=now - timedelta(minutes=1))
    await store.upsert([live, forever, old, old_bob])

    assert {m.id for m in await _list_all(store, "alice")} == {live.memory.id, forever.memory.id}
    hits = await store.search(_query("alice", unit(1)))
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
    alice_gone = new_record("alice", deleted_at=_now())
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
    await store.upsert([new_record("bob", deleted_at=_now())])

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


# -- property: tenant isolation ------------------------------------------------


@dataclass(frozen=True)
class _Planted:
    user: int
    agent: str | None
    pinned: bool
    n: int
    state: str


_planted = st.builds(
    _Planted,
    user=st.integers(0, 2),
    agent=st.sampled_from([None, "a1", "a2"]),
    pinned=st.booleans(),
    n=st.integers(0, 5),
    state=st.sampled_from(["live", "live", "live", "deleted", "expired"]),
)
_conditions = st.one_of(
    st.builds(MetadataCondition, key=st.just("pinned"), equals=st.booleans()),
    st.builds(
        MetadataCondition,
        key=st.just("n"),
        any_of=st.lists(st.integers(0, 5), min_size=1, max_size=3).map(tuple),
    ),
    st.tuples(st.none() | st.integers(0, 5), st.none() | st.integers(0, 5))
    .filter(lambda bounds: bounds != (None, None))
    .map(lambda b: MetadataCondition("n", gte=b[0], lte=b[1])),
)
_filters = st.builds(
    SearchFilter,
    agent_id=st.sampled_from([None, "a1", "a2"]),
    metadata=st.lists(_conditions, max_size=2).map(tuple),
)


def _satisfies(p: _Planted, f: SearchFilter) -> bool:
    meta: Mapping[str, Any] = {"pinned": p.pinned, "n": p.n}
    if f.agent_id is not None and p.agent != f.agent_id:
        return False
    for c in f.metadata:
        value = meta[c.key]
        if c.equals is not None and value != c.equals:
            return False
        if c.any_of is not None and value not in c.any_of:
            return False
        if (c.gte is not None and value < c.gte) or (c.lte is not None and value > c.lte):
            return False
    return True


@settings(
    max_examples=30,
    deadline=None,
    # One store serves every example; each example writes under fresh user ids,
    # and what earlier examples left behind only adds other tenants' data.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    planted=st.lists(_planted, min_size=1, max_size=20),
    asker=st.integers(0, 2),
    flt=_filters,
    limit=st.integers(1, 10),
    min_score=st.none() | st.floats(-1.0, 1.0),
    data=st.data(),
)
async def test_search_never_returns_another_users_memory_in_either_index(
    store: MemoryStore,
    new_record: Records,
    dim: int,
    planted: list[_Planted],
    asker: int,
    flt: SearchFilter,
    limit: int,
    min_score: float | None,
    data: st.DataObject,
) -> None:
    components = st.lists(st.integers(-3, 3), min_size=dim, max_size=dim).filter(any)
    tag = uuid4().hex[:8]
    now = _now()
    records: dict[UUID, tuple[_Planted, MemoryRecord]] = {}
    for p in planted:
        rec = new_record(
            f"{tag}-u{p.user}",
            [float(x) for x in data.draw(components)],
            agent_id=p.agent,
            # Every user's memories share the words a lexical search asks for.
            content=f"planted tea number {p.n}",
            metadata={"pinned": p.pinned, "n": p.n},
            deleted_at=now if p.state == "deleted" else None,
            expires_at=now - timedelta(hours=1) if p.state == "expired" else None,
        )
        records[rec.memory.id] = (p, rec)
    await store.upsert([rec for _, rec in records.values()])
    asking = f"{tag}-u{asker}"
    query = [float(x) for x in data.draw(components)]

    hits = await store.search(
        VectorQuery(asking, query, limit, now, min_score=min_score, filters=flt)
    )

    assert len(hits) <= limit
    for hit in hits:
        assert hit.memory.user_id == asking
        planted_as, rec = records[hit.memory.id]
        assert planted_as.user == asker
        assert planted_as.state == "live"
        assert _satisfies(planted_as, flt)
        assert min_score is None or hit.score >= min_score - 1e-6
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    eligible = {
        i
        for i, (p, _) in records.items()
        if p.user == asker and p.state == "live" and _satisfies(p, flt)
    }
    if min_score is None and len(eligible) <= limit:
        assert {h.memory.id for h in hits} == eligible

    # The lexical index: the same tenancy, state and filters, whatever matches the terms.
    lexical = await store.search_lexical(
        VectorQuery(asking, [], limit, now, filters=flt, terms=("plant", "tea"))
    )
    assert len(lexical) <= limit
    for hit in lexical:
        assert hit.memory.user_id == asking
        assert hit.memory.id in eligible
    if len(eligible) <= limit:
        assert {h.memory.id for h in lexical} == eligible
    # What a fused search ranks by (ids alone) keeps to them too, in both indexes.
    asked = VectorQuery(asking, query, limit, now, min_score, flt, terms=("plant", "tea"))
    for in_lexical in (False, True):
        assert {key for key, _ in await store.rank(asked, lexical=in_lexical)} <= eligible
