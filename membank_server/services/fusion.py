"""Fusing rankings: reciprocal rank fusion or weighted normalised scores, and recency.

Each retriever hands over its candidates best first. A hit's fused score is
``RRF = sum over retrievers of w / (k + rank)`` or, for ``weighted``, the weighted
sum of its min-max normalised scores (a retriever that did not find it adds 0).
With a recency weight ``r``, the fused score is then scaled by
``(1 - r) + r * 2 ** (-age_days / half_life_days)``, the age counted from the
memory's ``occurred_at`` (else ``created_at``) to the query's time. Ties go to the
dense ranking's order, then the lexical one's. Every fused hit carries ``ranks``:
which retrievers found it, at which rank.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from uuid import UUID

from membank_server.domain.model import Memory, SearchHit
from membank_server.domain.retrieval import FusionMethod, Retrieval

__all__ = ["DENSE", "LEXICAL", "fuse", "fused_ranks", "recency_factor", "with_ranks"]

DENSE, LEXICAL = "dense", "lexical"
_DAY = 86_400.0


def with_ranks(name: str, hits: Sequence[SearchHit]) -> list[SearchHit]:
    """One retriever's hits, each marked with its rank (for a search that is not fused)."""
    return [replace(h, ranks={name: i}) for i, h in enumerate(hits, start=1)]


def recency_factor(memory: Memory, now: datetime, weight: float, half_life_days: float) -> float:
    if weight <= 0:
        return 1.0
    at = memory.occurred_at or memory.created_at
    age_days = max(0.0, (now - at).total_seconds() / _DAY)
    return float((1.0 - weight) + weight * 2.0 ** (-age_days / half_life_days))


def _normalised(ranked: Sequence[tuple[UUID, float]]) -> dict[UUID, float]:
    if not ranked:
        return {}
    scores = [score for _, score in ranked]
    low, high = min(scores), max(scores)
    span = high - low
    return {key: (score - low) / span if span > 0 else 1.0 for key, score in ranked}


def fused_ranks(
    rankings: Mapping[str, Sequence[tuple[UUID, float]]], options: Retrieval, limit: int
) -> list[tuple[UUID, float, dict[str, int]]]:
    """The best ``limit`` candidates of rankings of ids and scores, with their fused
    score (no recency: that needs each memory's time) and ranks."""
    scores, ranks = _fused(rankings, options)
    order = {key: i for i, key in enumerate(ranks)}
    best = sorted(ranks, key=lambda key: (-scores[key], order[key]))[:limit]
    return [(key, scores[key], ranks[key]) for key in best]


def _fused(
    rankings: Mapping[str, Sequence[tuple[UUID, float]]], options: Retrieval
) -> tuple[dict[UUID, float], dict[UUID, dict[str, int]]]:
    """Each candidate's fused score and ranks, candidates in the order first seen."""
    weights = {DENSE: options.dense_weight, LEXICAL: 1.0 - options.dense_weight}
    ranks: dict[UUID, dict[str, int]] = {}
    scores: dict[UUID, float] = {}
    for name, ranked in rankings.items():
        weight = weights.get(name, 0.5)
        normal = _normalised(ranked) if options.fusion is FusionMethod.WEIGHTED else {}
        for rank, (key, _) in enumerate(ranked, start=1):
            if name in ranks.get(key, {}):
                continue  # a retriever's duplicate: its best rank counts
            ranks.setdefault(key, {})[name] = rank
            if options.fusion is FusionMethod.WEIGHTED:
                part = weight * normal[key]
            else:
                part = 2.0 * weight / (options.rrf_k + rank)
            scores[key] = scores.get(key, 0.0) + part
    return scores, ranks


def fuse(
    rankings: Mapping[str, Sequence[SearchHit]],
    options: Retrieval,
    limit: int,
    now: datetime,
) -> list[SearchHit]:
    """The best ``limit`` hits of the fused rankings (module docs)."""
    memories: dict[UUID, Memory] = {}
    for hits in rankings.values():
        for hit in hits:
            memories.setdefault(hit.memory.id, hit.memory)
    scores, ranks = _fused(
        {name: [(h.memory.id, h.score) for h in hits] for name, hits in rankings.items()},
        options,
    )
    order = {key: i for i, key in enumerate(ranks)}
    fused = [
        SearchHit(
            memories[key],
            scores[key]
            * recency_factor(
                memories[key], now, options.recency_weight, options.recency_half_life_days
            ),
            ranks[key],
        )
        for key in ranks
    ]
    fused.sort(key=lambda h: (-h.score, order[h.memory.id]))
    return fused[:limit]
