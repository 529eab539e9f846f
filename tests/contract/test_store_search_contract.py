"""The MemoryStore contract, search: nearest first, limits, scores and every filter.

The stores come from conftest.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from membank_server.domain.model import (
    MemoryRecord,
    MetadataCondition,
    SearchFilter,
)
from membank_server.domain.ports import MemoryStore
from tests.contract.store_support import Records, Unit, vector_query

__all__: list[str] = []


# -- search ------------------------------------------------------------------


async def test_search_returns_the_nearest_first_within_limit_and_min_score(
    store: MemoryStore, new_record: Records, unit: Unit
) -> None:
    query = unit(axes={0: 1.0})
    # Cosine to the query falls with k: 1.0, 0.89, 0.71, 0.55, 0.45.
    ladder = [new_record("alice", unit(axes={0: 1.0, 1: 0.5 * k})) for k in range(5)]
    intruders = [new_record("bob", query), new_record("bob", unit(axes={0: 1.0, 2: 0.1}))]
    await store.upsert(ladder[::-1] + intruders)

    hits = await store.search(vector_query("alice", query, limit=3))
    assert [h.memory.id for h in hits] == [r.memory.id for r in ladder[:3]]
    assert [h.memory for h in hits] == [r.memory for r in ladder[:3]]
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] == pytest.approx(1.0, abs=1e-4)

    above = await store.search(vector_query("alice", query, min_score=0.6))
    assert [h.memory.id for h in above] == [r.memory.id for r in ladder[:3]]
    assert all(h.score >= 0.6 for h in above)

    everything = await store.search(vector_query("alice", query, limit=50))
    assert [h.memory.id for h in everything] == [r.memory.id for r in ladder]
    assert await store.search(vector_query("carol", query)) == []


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

    hits = await store.search(vector_query("alice", unit(99), filters=case.filters))

    assert {h.memory.id for h in hits} == expected
    assert len(hits) == len(expected)
