"""How a search retrieves and ranks: its mode, the fusion of two rankings, and the knobs.

``dense`` ranks by embedding similarity, ``lexical`` by BM25-style term matching,
``hybrid`` asks both and fuses their rankings: ``rrf`` (reciprocal rank fusion,
``sum of weight / (k + rank)``) or ``weighted`` (each ranking's scores scaled to
0..1 by its best and worst candidate, then ``dense_weight * dense + (1 - dense_weight)
* lexical``). A recency weight, when set, scales every fused score by
``(1 - w) + w * 2 ** (-age / half_life)``, the age taken from ``occurred_at`` (or
``created_at``).

The ports a search works through live here too (re-exported by ``domain.ports``): the
``Analyzer`` that turns text into lexical terms and the optional ``Reranker``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from enum import StrEnum
from typing import Protocol

__all__ = ["Analyzer", "FusionMethod", "Reranker", "Retrieval", "RetrievalChoice", "SearchMode"]


class SearchMode(StrEnum):
    DENSE = "dense"
    LEXICAL = "lexical"
    HYBRID = "hybrid"


class FusionMethod(StrEnum):
    RRF = "rrf"
    WEIGHTED = "weighted"


@dataclass(frozen=True, slots=True)
class Retrieval:
    """One search's retrieval settings (the server's defaults fill what a request omits).

    Attributes:
        mode: Which retrievers run.
        fusion: How ``hybrid`` fuses the two rankings.
        rrf_k: RRF's k: larger flattens the advantage of the first ranks.
        dense_depth: Candidates the dense retriever hands to fusion (at least the limit).
        lexical_depth: Candidates the lexical retriever hands to fusion.
        dense_weight: The dense ranking's share, 0..1 (``weighted``, and RRF's weights
            as ``2 * dense_weight`` and ``2 * (1 - dense_weight)``).
        recency_weight: 0 (off) .. 1: how much a memory's age scales its fused score.
        recency_half_life_days: The age at which the recency factor is one half.
        rerank: Reorder the fused candidates with the configured reranker.
        explain: Return, per hit, the rank each retriever gave it.
    """

    mode: SearchMode = SearchMode.HYBRID
    fusion: FusionMethod = FusionMethod.WEIGHTED
    rrf_k: int = 60
    dense_depth: int = 100
    lexical_depth: int = 100
    dense_weight: float = 0.6
    recency_weight: float = 0.0
    recency_half_life_days: float = 30.0
    rerank: bool = False
    explain: bool = False


@dataclass(frozen=True, slots=True)
class RetrievalChoice:
    """What one search asks of retrieval (``Retrieval``'s fields); None: the default."""

    mode: SearchMode | None = None
    fusion: FusionMethod | None = None
    rrf_k: int | None = None
    dense_depth: int | None = None
    lexical_depth: int | None = None
    dense_weight: float | None = None
    recency_weight: float | None = None
    recency_half_life_days: float | None = None
    rerank: bool | None = None
    explain: bool | None = None

    def over(self, defaults: Retrieval) -> Retrieval:
        """The retrieval this choice makes of the defaults."""
        chosen = {f.name: getattr(self, f.name) for f in fields(self)}
        return replace(defaults, **{k: v for k, v in chosen.items() if v is not None})

    @classmethod
    def of(cls, retrieval: Retrieval) -> RetrievalChoice:
        """The choice of every field as ``retrieval`` has it."""
        return cls(**asdict(retrieval))


class Analyzer(Protocol):
    """Turns text into lexical index terms: the same terms for a memory and a query."""

    def terms(self, text: str) -> tuple[str, ...]:
        """The text's terms in order, repeats kept (they count as term frequency)."""
        ...


class Reranker(Protocol):
    """Scores candidate texts against a query (a cross-encoder behind an HTTP API)."""

    async def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        """One relevance score per document, in order; higher is better.

        Raises:
            EmbedderUnavailable: the provider cannot answer (or its breaker is open).
        """
        ...

    async def aclose(self) -> None: ...
