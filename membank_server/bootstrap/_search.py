"""Search from settings: the lexical index every store shares, the default retrieval,
the optional reranker."""

from __future__ import annotations

from membank_server.config import Settings
from membank_server.domain.ports import MemoryStore, Reranker
from membank_server.domain.retrieval import Retrieval
from membank_server.lexical import Bm25Weights, LexicalIndex, SnowballAnalyzer
from membank_server.services.search import HybridSearch

__all__ = ["build_lexical", "build_reranker", "build_search", "default_retrieval"]


def build_lexical(settings: Settings) -> LexicalIndex:
    s = settings.search
    return LexicalIndex(
        SnowballAnalyzer(s.language),
        Bm25Weights(k1=s.bm25_k1, b=s.bm25_b, avg_len=s.bm25_avg_len),
    )


def default_retrieval(settings: Settings) -> Retrieval:
    s = settings.search
    return Retrieval(
        mode=s.mode,
        fusion=s.fusion,
        rrf_k=s.rrf_k,
        dense_depth=s.dense_depth,
        lexical_depth=s.lexical_depth,
        dense_weight=s.dense_weight,
        recency_weight=s.recency_weight,
        recency_half_life_days=s.recency_half_life_days,
    )


def build_reranker(settings: Settings) -> Reranker | None:
    s = settings.search
    if not s.rerank_url:
        return None
    from membank_server.embeddings.rerank import HttpReranker

    return HttpReranker(
        base_url=s.rerank_url,
        model=s.rerank_model or None,
        api_key=s.rerank_api_key or None,
        timeout=s.rerank_timeout,
    )


def build_search(settings: Settings, store: MemoryStore, reranker: Reranker | None) -> HybridSearch:
    return HybridSearch(
        store,
        build_lexical(settings).analyzer,
        default_retrieval(settings),
        reranker,
        settings.search.rerank_candidates,
    )
