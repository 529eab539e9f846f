"""Settings of search: the default retrieval, the lexical analysis, the reranker."""

from __future__ import annotations

from membank_server.config._base import Section
from membank_server.config._process import check_positive
from membank_server.domain.errors import ConfigError
from membank_server.domain.retrieval import FusionMethod, Retrieval, SearchMode

__all__ = ["SearchSettings", "check_search"]

_LANGUAGES = [
    "arabic",
    "armenian",
    "basque",
    "catalan",
    "czech",
    "danish",
    "dutch",
    "dutch_porter",
    "english",
    "esperanto",
    "estonian",
    "finnish",
    "french",
    "german",
    "greek",
    "hindi",
    "hungarian",
    "indonesian",
    "irish",
    "italian",
    "lithuanian",
    "nepali",
    "norwegian",
    "persian",
    "polish",
    "porter",
    "portuguese",
    "romanian",
    "russian",
    "serbian",
    "sesotho",
    "spanish",
    "swedish",
    "tamil",
    "turkish",
    "yiddish",
]


#: The defaults live in the domain: one place for the figures the evaluation chose.
_DEFAULT = Retrieval()


class SearchSettings(Section):
    """What a search gets when its request says nothing (``domain.retrieval``); the
    lexical index's language and BM25 weighting; the optional reranker."""

    mode: SearchMode = _DEFAULT.mode
    fusion: FusionMethod = _DEFAULT.fusion
    rrf_k: int = _DEFAULT.rrf_k
    dense_depth: int = _DEFAULT.dense_depth
    lexical_depth: int = _DEFAULT.lexical_depth
    dense_weight: float = _DEFAULT.dense_weight
    recency_weight: float = _DEFAULT.recency_weight
    recency_half_life_days: float = _DEFAULT.recency_half_life_days
    #: The Snowball stemmer (and stop words, for English) of the lexical index. Terms
    #: are made when a memory is written: changing it needs a reindex.
    language: str = "english"
    bm25_k1: float = 1.2
    bm25_b: float = 0.75
    #: A typical memory's length in terms (after stop words), for BM25's normalisation.
    bm25_avg_len: float = 12.0
    #: A TEI- or Cohere-style ``POST <url>/rerank`` endpoint; empty for no reranker.
    rerank_url: str = ""
    rerank_model: str = ""
    rerank_api_key: str = ""
    rerank_timeout: float = 2.0
    rerank_candidates: int = 30


def check_search(s: SearchSettings) -> None:
    """The section's rules (each error one line naming the setting)."""
    check_positive(
        {
            "search.rrf_k": s.rrf_k,
            "search.dense_depth": s.dense_depth,
            "search.lexical_depth": s.lexical_depth,
            "search.recency_half_life_days": s.recency_half_life_days,
            "search.bm25_avg_len": s.bm25_avg_len,
            "search.rerank_timeout": s.rerank_timeout,
            "search.rerank_candidates": s.rerank_candidates,
        }
    )
    for name, value in (
        ("dense_weight", s.dense_weight),
        ("recency_weight", s.recency_weight),
        ("bm25_b", s.bm25_b),
    ):
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"setting search.{name} must be between 0 and 1, got {value}")
    if s.bm25_k1 < 0:
        raise ConfigError(f"setting search.bm25_k1 must not be negative, got {s.bm25_k1}")
    if max(s.dense_depth, s.lexical_depth, s.rerank_candidates) > 1000:
        raise ConfigError("settings search.*_depth and rerank_candidates must be at most 1000")
    if s.language not in _LANGUAGES:
        raise ConfigError(f"setting search.language must be a Snowball language: {_LANGUAGES}")
    if s.rerank_url and not s.rerank_url.startswith(("http://", "https://")):
        raise ConfigError("setting search.rerank_url must be an http(s) URL")
