"""EdgeStore's search requests: nearest dense vectors, and the lexical sparse vector with
IDF from the asking user's own live memories (``_lexical``); and the check of a hit."""

from __future__ import annotations

from typing import Any

import qdrant_edge as qe

from membank_server.domain.model import SearchHit, VectorQuery
from membank_server.lexical import LexicalIndex
from membank_server.storage._checked import checked_memory, damaged, owned_live
from membank_server.storage._edge_ops import edge_filter
from membank_server.storage._edge_scans import NO_HISTORY
from membank_server.storage._lexical import LEXICAL
from membank_server.storage._payload import live_conditions, search_conditions

__all__ = ["checked_hit", "dense_request", "lexical_request"]


def dense_request(query: VectorQuery, params: Any) -> dict[str, Any]:
    return {
        "limit": query.limit,
        "query": qe.Query.Nearest(list(query.vector)),
        "filter": edge_filter(search_conditions(query.user_id, query.now, query.filters)),
        "with_payload": NO_HISTORY,
        "score_threshold": query.min_score,
        "params": params,
    }


def lexical_request(query: VectorQuery, index: LexicalIndex) -> dict[str, Any] | None:
    """None when the query has no term to look for."""
    terms = index.query(query.terms)
    if not terms:
        return None
    user = edge_filter(live_conditions(query.user_id, query.now))
    return {
        "limit": query.limit,
        "query": qe.Query.Nearest(
            qe.SparseVector(list(terms.indices), list(terms.values)), using=LEXICAL
        ),
        "filter": edge_filter(search_conditions(query.user_id, query.now, query.filters)),
        "with_payload": NO_HISTORY,
        "params": qe.SearchParams(idf=qe.IdfParams(corpus=user)),
    }


def checked_hit(p: Any, query: VectorQuery, *, unit: bool) -> SearchHit:
    """A scored point as a hit, its payload checked and owned by the asking user; with
    ``unit`` (cosine) a score beyond ±1 means a damaged vector."""
    score = float(p.score)
    if unit and not -1.001 <= score <= 1.001:
        raise damaged(p.id, f"a cosine score of {score:.3f}: its vector is damaged")
    return SearchHit(owned_live(checked_memory(p.id, p.payload), query.user_id, query.now), score)
