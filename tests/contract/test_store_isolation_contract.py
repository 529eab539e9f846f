"""The MemoryStore contract, tenant isolation: no search in either index ever returns
another user's memory, whatever the filters (a property; the stores come from conftest.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from membank_server.domain.model import (
    MemoryRecord,
    MetadataCondition,
    SearchFilter,
    VectorQuery,
)
from membank_server.domain.ports import MemoryStore
from tests.contract.store_support import Records, utc_now

__all__: list[str] = []


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
    now = utc_now()
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
