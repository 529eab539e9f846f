"""QdrantStore's searches: nearest dense vectors, and the lexical sparse vector with IDF
from the asking user's own memories (``_lexical``); with their payloads (hits) or
without (``ranks``: ids and scores)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from qdrant_client import models

from membank_server.domain.model import SearchHit, VectorQuery
from membank_server.lexical import LexicalIndex
from membank_server.storage._checked import checked_memory, damaged, owned_live, sound
from membank_server.storage._lexical import LEXICAL
from membank_server.storage._payload import live_conditions, search_conditions
from membank_server.storage._qdrant_collection import Call, qdrant_filter
from membank_server.storage._qdrant_scans import WITHOUT_HISTORY

__all__ = ["dense_request", "dense_search", "lexical_request", "lexical_search", "ranks"]


def dense_request(query: VectorQuery, params: Any) -> dict[str, Any]:
    """``query_points``' arguments for the nearest dense vectors."""
    return {
        "query": list(query.vector),
        "query_filter": qdrant_filter(search_conditions(query.user_id, query.now, query.filters)),
        "limit": query.limit,
        "with_payload": WITHOUT_HISTORY,
        "score_threshold": query.min_score,
        "search_params": params,
    }


def lexical_request(query: VectorQuery, index: LexicalIndex) -> dict[str, Any] | None:
    """``query_points``' arguments for the query's terms; None when it has none."""
    terms = index.query(query.terms)
    if not terms:
        return None
    corpus = qdrant_filter(live_conditions(query.user_id, query.now))
    return {
        "query": models.SparseVector(indices=list(terms.indices), values=list(terms.values)),
        "using": LEXICAL,
        "query_filter": qdrant_filter(search_conditions(query.user_id, query.now, query.filters)),
        "limit": query.limit,
        "with_payload": WITHOUT_HISTORY,
        "search_params": models.SearchParams(idf=models.IdfCorpusParams(corpus=corpus)),
    }


async def dense_search(
    call: Call, collection: str, query: VectorQuery, params: Any, unit: bool
) -> list[SearchHit]:
    request = dense_request(query, params)
    response = await call("search", lambda c: c.query_points(collection, **request))

    def hit(p: Any) -> SearchHit:
        score = float(p.score)
        if unit and not -1.001 <= score <= 1.001:
            raise damaged(p.id, f"a cosine score of {score:.3f}: its vector is damaged")
        return SearchHit(_owned(p, query), score)

    return sound(response.points, hit)


async def lexical_search(
    call: Call, collection: str, query: VectorQuery, index: LexicalIndex
) -> list[SearchHit]:
    request = lexical_request(query, index)
    if request is None:
        return []
    response = await call("search", lambda c: c.query_points(collection, **request))
    return sound(response.points, lambda p: SearchHit(_owned(p, query), float(p.score)))


async def ranks(
    call: Call, collection: str, query: VectorQuery, params: Any, index: LexicalIndex | None
) -> list[tuple[UUID, float]]:
    """The ids and scores of the lexical search with ``index``, else of the dense one
    with ``params``, reading no payload."""
    request = lexical_request(query, index) if index is not None else dense_request(query, params)
    if request is None:
        return []
    bare = {**request, "with_payload": False}
    response = await call("search", lambda c: c.query_points(collection, **bare))
    return [(UUID(str(p.id)), float(p.score)) for p in response.points]


def _owned(p: Any, query: VectorQuery) -> Any:
    return owned_live(checked_memory(str(p.id), p.payload), query.user_id, query.now)
