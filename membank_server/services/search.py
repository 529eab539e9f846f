"""HybridSearch: one search's retrievers, run side by side, fused, optionally reranked.

``dense`` asks the store for the nearest vectors, ``lexical`` for the best matches of
the query's terms (the same analysis the store indexed memories with), ``hybrid``
for both at their candidate depths, then fuses the two rankings
(``services.fusion``). A search by vector alone has no text: ``hybrid`` is then
dense, and ``lexical`` is refused. ``min_score`` bounds the dense candidates only (a
lexical score is on another scale).

Without a recency weight, ``hybrid`` ranks the candidates by id and score alone
(``MemoryStore.rank``) and reads only the memories it keeps: reading and checking
every candidate's payload cost more than both retrievers together.

The reranker, when configured and asked for, reorders the first
``rerank_candidates`` fused hits by its own scores; when it cannot answer (its
breaker open, a timeout), the fused order stands and the search still succeeds.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import replace
from datetime import datetime
from typing import Any
from uuid import UUID

from membank_server.domain.errors import EmbedderUnavailable, InvalidInput, NotEnabled
from membank_server.domain.model import SearchHit, VectorQuery
from membank_server.domain.ports import Analyzer, MemoryStore, Reranker
from membank_server.domain.retrieval import Retrieval, RetrievalChoice, SearchMode
from membank_server.services.fusion import DENSE, LEXICAL, fuse, fused_ranks, with_ranks
from membank_server.services.inputs import RecallQuery

__all__ = ["HybridSearch", "WordAnalyzer"]

_log = logging.getLogger("membank.search")


class WordAnalyzer:
    """The plainest analysis: case-folded runs of letters and digits. What a service
    built without one gets (tests); the server wires the stores' own."""

    def terms(self, text: str) -> tuple[str, ...]:
        return tuple(re.findall(r"\w+", text.casefold()))


class HybridSearch:
    """Runs searches in any mode over one store.

    Args:
        store: Where memories are searched.
        analyzer: Query text to lexical terms (the stores' own analysis).
        defaults: What a search that says nothing of retrieval gets.
        reranker: The optional reranker; None when not configured.
        rerank_candidates: How many fused hits the reranker reorders.
    """

    def __init__(
        self,
        store: MemoryStore,
        analyzer: Analyzer,
        defaults: Retrieval | None = None,
        reranker: Reranker | None = None,
        rerank_candidates: int = 30,
    ) -> None:
        self.store = store
        self.analyzer = analyzer
        self.defaults = defaults or Retrieval()
        self.reranker = reranker
        self.rerank_candidates = rerank_candidates

    def resolve(self, q: RecallQuery) -> RecallQuery:
        """``q`` with the retrieval it will get: the defaults where it said nothing, and
        ``dense`` for a search by vector.

        Raises:
            InvalidInput: ``lexical`` without text.
            NotEnabled: a rerank with no reranker configured.
        """
        options = q.retrieval.over(self.defaults)
        if q.query is None and options.mode is not SearchMode.DENSE:
            if options.mode is SearchMode.LEXICAL:
                raise InvalidInput("a lexical search needs query text", {"field": "mode"})
            options = replace(options, mode=SearchMode.DENSE)
        if options.rerank and self.reranker is None:
            raise NotEnabled("no reranker is configured on this server", {"field": "rerank"})
        return replace(q, retrieval=RetrievalChoice.of(options))

    @staticmethod
    def needs_vector(q: RecallQuery) -> bool:
        """Whether a resolved query needs the query's embedding."""
        return q.retrieval.mode is not SearchMode.LEXICAL

    async def run(
        self, q: RecallQuery, vector: list[float] | None, now: datetime
    ) -> list[SearchHit]:
        """The hits of a resolved query (``resolve``); ``vector`` unless lexical."""
        options = q.retrieval.over(self.defaults)
        terms = self.analyzer.terms(q.query) if q.query is not None else ()

        def ask(limit: int) -> VectorQuery:
            return VectorQuery(
                q.user_id, vector or [], limit, now, q.min_score, q.filters, terms=terms
            )

        if options.mode is SearchMode.DENSE:
            assert vector is not None
            hits = with_ranks(DENSE, await self.store.search(ask(q.limit)))
        elif options.mode is SearchMode.LEXICAL:
            hits = with_ranks(LEXICAL, await self.store.search_lexical(ask(q.limit)))
        else:
            assert vector is not None
            depth = max(options.dense_depth, q.limit), max(options.lexical_depth, q.limit)
            wanted = max(q.limit, self.rerank_candidates) if options.rerank else q.limit
            if options.recency_weight > 0:  # its factor needs every candidate's times
                dense, lexical = await asyncio.gather(
                    self.store.search(ask(depth[0])),
                    self.store.search_lexical(ask(depth[1])) if terms else _none(),
                )
                hits = fuse({DENSE: dense, LEXICAL: lexical}, options, wanted, now)
            else:
                ranked = await asyncio.gather(
                    self.store.rank(ask(depth[0])),
                    self.store.rank(ask(depth[1]), lexical=True) if terms else _none(),
                )
                best = fused_ranks(
                    dict(zip((DENSE, LEXICAL), ranked, strict=True)), options, wanted
                )
                hits = await self._read(q.user_id, best, now)
        if options.rerank and q.query is not None:
            hits = (await self._reranked(q.query, hits[: self.rerank_candidates])) + hits[
                self.rerank_candidates :
            ]
        hits = hits[: q.limit]
        return hits if options.explain else [replace(h, ranks={}) for h in hits]

    async def _read(
        self, user_id: str, best: list[tuple[UUID, float, dict[str, int]]], now: datetime
    ) -> list[SearchHit]:
        """The fused candidates' memories, in order; one deleted or expired since it was
        ranked is left out."""
        records = await self.store.get(user_id, [key for key, _, _ in best])
        hits = []
        for key, score, ranks in best:
            record = records.get(key)
            if record and record.deleted_at is None and not record.memory.is_expired(now):
                hits.append(SearchHit(record.memory, score, ranks))
        return hits

    async def _reranked(self, query: str, hits: list[SearchHit]) -> list[SearchHit]:
        assert self.reranker is not None
        try:
            scores = await self.reranker.rerank(query, [h.memory.content for h in hits])
        except EmbedderUnavailable as exc:
            _log.warning("reranker unavailable, fused order kept: %s", exc.message)
            return hits
        order = sorted(range(len(hits)), key=lambda i: (-scores[i], i))
        return [
            replace(hits[i], score=float(scores[i]), ranks={**hits[i].ranks, "rerank": n})
            for n, i in enumerate(order, start=1)
        ]


async def _none() -> list[Any]:
    return []
