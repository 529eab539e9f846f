"""Lexical retrieval: turning text into index terms, and terms into BM25 weights.

One analyser serves every backend (``analyzer``): Qdrant stores hash its terms into
sparse vectors (``sparse``), PostgreSQL keeps them in a ``tsvector``; with field
encryption on, ``security.encrypted_store`` replaces each term by a keyed hash
before a store sees it. Depends only on the domain and PyStemmer.
"""

from __future__ import annotations

from membank_server.lexical.analyzer import LANGUAGES, SnowballAnalyzer
from membank_server.lexical.index import LexicalIndex
from membank_server.lexical.sparse import Bm25Weights, SparseTerms, term_index

__all__ = [
    "LANGUAGES",
    "Bm25Weights",
    "LexicalIndex",
    "SnowballAnalyzer",
    "SparseTerms",
    "term_index",
]
