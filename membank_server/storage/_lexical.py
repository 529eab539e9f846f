"""The lexical index in the Qdrant-family stores: a sparse vector named ``lexical`` in
each point beside the unnamed dense vector, with Qdrant's IDF modifier, so one point
holds both and one request can prefetch both.

A live record's sparse vector holds BM25's term-frequency weights of its terms
(``membank_server.lexical``); tombstones have none. IDF comes from the asking user's
own live memories (``IdfParams`` scoped by a filter): a score never depends on, and
so never reveals anything of, another tenant's memories.
"""

from __future__ import annotations

from typing import Any

from membank_server.domain.model import MemoryRecord
from membank_server.lexical import LexicalIndex, SparseTerms

__all__ = ["LEXICAL", "dense_part", "point_vectors"]

#: The sparse vector's name.
LEXICAL = "lexical"


def dense_part(vector: Any) -> Any:
    """The dense vector of a point read back: the engines give a dict of named vectors
    when a point has a sparse one too, a plain list otherwise."""
    if isinstance(vector, dict):
        return vector.get("", [])
    return vector


def point_vectors(record: MemoryRecord, index: LexicalIndex, sparse: Any) -> dict[str, Any]:
    """A point's named vectors: the dense one (when the record has one) and its terms
    as ``sparse(indices, values)`` (when it has any)."""
    vectors: dict[str, Any] = {}
    if record.vector:
        vectors[""] = list(record.vector)
    terms: SparseTerms = index.document(record)
    if terms:
        vectors[LEXICAL] = sparse(list(terms.indices), list(terms.values))
    return vectors
