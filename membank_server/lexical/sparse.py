"""Index terms as BM25 sparse vectors, for the Qdrant stores.

A term's dimension is a 32-bit hash of it (``term_index``): no vocabulary to keep in
step across processes, and a collision of two terms (one in about 4 billion pairs)
merges them. A memory's vector holds BM25's term-frequency part for each term,
``tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / avg_len))``; the store's IDF
modifier supplies the other part at query time, from the user's own memories. A
query's vector holds 1 for each distinct term, so a score is BM25 itself.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Bm25Weights", "SparseTerms", "term_index"]


def term_index(term: str) -> int:
    """The sparse dimension of a term: the first 4 bytes of its BLAKE2b digest."""
    return int.from_bytes(hashlib.blake2b(term.encode("utf-8"), digest_size=4).digest(), "big")


@dataclass(frozen=True, slots=True)
class SparseTerms:
    """A sparse vector: dimensions in ascending order, and their weights."""

    indices: tuple[int, ...]
    values: tuple[float, ...]

    def __bool__(self) -> bool:
        return bool(self.indices)


@dataclass(frozen=True, slots=True)
class Bm25Weights:
    """BM25's term-frequency weighting.

    Args:
        k1: Term-frequency saturation.
        b: Length normalisation (0 none, 1 full).
        avg_len: The typical memory's length in terms (after stop words): a fixed
            figure, so a memory's weights never change when others are written.
    """

    k1: float = 1.2
    b: float = 0.75
    avg_len: float = 12.0

    def document(self, terms: Sequence[str]) -> SparseTerms:
        """A memory's vector: BM25's term-frequency part per distinct term."""
        norm = self.k1 * (1 - self.b + self.b * len(terms) / self.avg_len)
        weights: dict[int, float] = {}
        for term, tf in Counter(terms).items():
            index = term_index(term)
            weights[index] = weights.get(index, 0.0) + tf * (self.k1 + 1) / (tf + norm)
        return _sparse(weights)

    @staticmethod
    def query(terms: Sequence[str]) -> SparseTerms:
        """A query's vector: 1 per distinct term."""
        return _sparse(dict.fromkeys(map(term_index, terms), 1.0))


def _sparse(weights: dict[int, float]) -> SparseTerms:
    ordered = sorted(weights.items())
    return SparseTerms(tuple(i for i, _ in ordered), tuple(v for _, v in ordered))
