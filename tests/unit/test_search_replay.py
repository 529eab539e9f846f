"""A counted search becomes the request that replays it, every field kept."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import msgspec

from membank_server.api.schemas import SearchBody
from membank_server.domain.model import MetadataCondition, SearchFilter
from membank_server.domain.retrieval import FusionMethod, RetrievalChoice, SearchMode
from membank_server.services.inputs import RecallQuery

_FULL = RecallQuery(
    user_id="alice",
    query="where do I live",
    vector=None,
    limit=7,
    min_score=0.25,
    filters=SearchFilter(
        agent_id="agent-1",
        session_id="s-1",
        created_after=datetime(2026, 1, 1, tzinfo=UTC),
        created_before=datetime(2026, 2, 1, tzinfo=UTC),
        metadata=(
            MetadataCondition("topic", "travel"),
            MetadataCondition("flag", False),
            MetadataCondition("tags", any_of=("a", 3)),
            MetadataCondition("score", gte=0.5, lte=2.0),
            MetadataCondition("level", gte=1.0),
            MetadataCondition("anything"),
        ),
        occurred_after=datetime(2024, 1, 1, tzinfo=UTC),
        occurred_before=datetime(2024, 6, 1, tzinfo=UTC),
    ),
    retrieval=RetrievalChoice(
        mode=SearchMode.LEXICAL,
        fusion=FusionMethod.WEIGHTED,
        rrf_k=20,
        dense_depth=30,
        lexical_depth=40,
        dense_weight=0.25,
        recency_weight=0.1,
        recency_half_life_days=7.0,
        rerank=True,
        explain=True,
    ),
)


def _replayed(q: RecallQuery) -> RecallQuery:
    body = msgspec.json.encode(SearchBody.of(q))
    return msgspec.json.decode(body, type=SearchBody).to_domain()


def test_every_field_of_a_search_survives_its_replay() -> None:
    # A field added to the query or its filters must be set here, and survive.
    for name in (f.name for f in dataclasses.fields(SearchFilter)):
        assert getattr(_FULL.filters, name) != getattr(SearchFilter(), name), name
    for name in (f.name for f in dataclasses.fields(RetrievalChoice)):
        assert getattr(_FULL.retrieval, name) is not None, name
    for name in ("query", "limit", "min_score", "filters", "retrieval"):
        assert getattr(_FULL, name) != getattr(RecallQuery("alice"), name), name
    assert _replayed(_FULL) == _FULL


def test_a_range_and_a_set_of_one_key_are_one_condition_each_way() -> None:
    q = RecallQuery(
        "bob",
        "q",
        filters=SearchFilter(
            metadata=(MetadataCondition("n", any_of=(1, 2)), MetadataCondition("n", gte=1.0))
        ),
    )
    body = msgspec.to_builtins(SearchBody.of(q))
    assert body["filters"] == {"metadata": {"n": {"in": [1, 2], "gte": 1.0}}}
    assert _replayed(q) == q


def test_a_plain_search_replays_as_a_plain_body() -> None:
    assert msgspec.to_builtins(SearchBody.of(RecallQuery("carol", "hello"))) == {
        "user_id": "carol",
        "query": "hello",
    }
