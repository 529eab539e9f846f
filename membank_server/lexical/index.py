"""LexicalIndex: what a store needs to keep its lexical index: the terms of a record
and their BM25 weights."""

from __future__ import annotations

from dataclasses import dataclass, field

from membank_server.domain.integrity import SEALED_PREFIX
from membank_server.domain.model import MemoryRecord
from membank_server.domain.ports import Analyzer
from membank_server.lexical.analyzer import SnowballAnalyzer
from membank_server.lexical.sparse import Bm25Weights, SparseTerms

__all__ = ["LexicalIndex"]


@dataclass(frozen=True)
class LexicalIndex:
    """The analyser and weighting a store indexes records with.

    Args:
        analyzer: Text to terms (the same one the services analyse queries with).
        weights: BM25's term-frequency weighting (sparse-vector stores).
    """

    analyzer: Analyzer = field(default_factory=SnowballAnalyzer)
    weights: Bm25Weights = field(default_factory=Bm25Weights)

    def terms(self, record: MemoryRecord) -> tuple[str, ...]:
        """A record's index terms: none for a tombstone (never searched), the caller's
        when it gave them, none for sealed content (only the sealing wrapper can read
        it), else the analysis of its content."""
        if record.deleted_at is not None:
            return ()
        if record.terms is not None:
            return record.terms
        if record.memory.content.startswith(SEALED_PREFIX):
            return ()
        return self.analyzer.terms(record.memory.content)

    def document(self, record: MemoryRecord) -> SparseTerms:
        return self.weights.document(self.terms(record))

    def query(self, terms: tuple[str, ...]) -> SparseTerms:
        return self.weights.query(terms)
