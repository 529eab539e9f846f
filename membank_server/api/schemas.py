"""The HTTP edge: msgspec Structs for requests and responses, and their mapping to the domain."""

from __future__ import annotations

from dataclasses import fields as dataclass_fields
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from msgspec import Meta, Struct

from membank_server.domain.model import (
    USER_ID_PATTERN,
    HistoryEvent,
    Memory,
    MetadataCondition,
    SearchFilter,
)
from membank_server.domain.retrieval import FusionMethod, RetrievalChoice, SearchMode
from membank_server.services.inputs import MemoryPatch, NewMemory, RecallQuery

#: Text with something besides white space, and no NUL (PostgreSQL cannot store one).
VISIBLE_TEXT = r"^[^\x00]*[^\s\x00][^\x00]*$(?!\n)"

__all__ = [
    "METADATA_KEY",
    "VISIBLE_TEXT",
    "BatchCreate",
    "BatchRead",
    "Deleted",
    "ErrorBody",
    "ErrorInfo",
    "HistoryList",
    "HistoryRead",
    "IdStr",
    "MemoryCreate",
    "MemoryPage",
    "MemoryRead",
    "MemoryUpdate",
    "MetadataOp",
    "SearchBody",
    "SearchFilters",
    "SearchResponse",
    "SearchResult",
]

IdStr = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=128,
        pattern=USER_ID_PATTERN.pattern,
        description="1-128 characters of [A-Za-z0-9_.:@-]",
    ),
]
METADATA_KEY = r"^[A-Za-z0-9_-]{1,64}$(?!\n)"
Content = Annotated[
    str,
    Meta(
        min_length=1,
        pattern=VISIBLE_TEXT,
        description="the memory's text: not only white space, no NUL",
    ),
]
Scalar = str | int | float | bool


class _In(Struct, forbid_unknown_fields=True, omit_defaults=True):
    pass


class MemoryCreate(_In):
    user_id: IdStr
    content: Content
    metadata: dict[str, Any] = {}
    agent_id: IdStr | None = None
    session_id: IdStr | None = None
    expires_at: datetime | None = None
    id: UUID | None = None
    vector: list[float] | None = None
    #: When it happened or was said (an imported conversation keeps its real times).
    occurred_at: datetime | None = None

    def to_domain(self) -> NewMemory:
        return NewMemory(
            user_id=self.user_id,
            content=self.content,
            metadata=self.metadata,
            agent_id=self.agent_id,
            session_id=self.session_id,
            expires_at=self.expires_at,
            id=self.id,
            vector=self.vector,
            occurred_at=self.occurred_at,
        )


class BatchCreate(_In):
    memories: list[MemoryCreate]


class MemoryUpdate(_In):
    content: Content | None = None
    metadata: dict[str, Any] | None = None
    expires_at: datetime | None = None
    vector: list[float] | None = None
    occurred_at: datetime | None = None

    def to_domain(self) -> MemoryPatch:
        """Fields left out (or null) stay as they are; an empty patch changes nothing."""
        return MemoryPatch(
            self.content, self.metadata, self.expires_at, self.vector, self.occurred_at
        )


class MetadataOp(_In):
    """A metadata condition other than equality: ``in`` a list, a ``gte``/``lte`` range,
    both (a value must pass both), or neither (``{}``: the key is set, to anything but
    null or an empty list). An empty ``in`` matches nothing."""

    in_: list[str | int] | None = msgspec.field(default=None, name="in")
    gte: float | None = None
    lte: float | None = None


class SearchFilters(_In):
    agent_id: IdStr | None = None
    session_id: IdStr | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    metadata: dict[Annotated[str, Meta(pattern=METADATA_KEY)], Scalar | MetadataOp] = {}
    #: On ``occurred_at``: a memory without one matches neither.
    occurred_after: datetime | None = None
    occurred_before: datetime | None = None

    def to_domain(self) -> SearchFilter:
        conditions = []
        for key, cond in self.metadata.items():
            if isinstance(cond, MetadataOp):
                ranged = cond.gte is not None or cond.lte is not None
                if cond.in_ is not None:
                    conditions.append(MetadataCondition(key, any_of=tuple(cond.in_)))
                if ranged or cond.in_ is None:
                    # A range, or with nothing given, "the key is set".
                    conditions.append(MetadataCondition(key, gte=cond.gte, lte=cond.lte))
            else:
                conditions.append(MetadataCondition(key, cond))
        return SearchFilter(
            agent_id=self.agent_id,
            session_id=self.session_id,
            created_after=self.created_after,
            created_before=self.created_before,
            metadata=tuple(conditions),
            occurred_after=self.occurred_after,
            occurred_before=self.occurred_before,
        )

    @classmethod
    def of(cls, f: SearchFilter) -> SearchFilters:
        """The filters that ``to_domain`` turns into ``f`` (a key's conditions merged)."""
        metadata: dict[str, Scalar | MetadataOp] = {}
        for c in f.metadata:
            if c.equals is not None:
                metadata[c.key] = c.equals
                continue
            op = metadata.get(c.key)
            op = op if isinstance(op, MetadataOp) else MetadataOp()
            if c.any_of is not None:
                op.in_ = list(c.any_of)
            op.gte = c.gte if c.gte is not None else op.gte
            op.lte = c.lte if c.lte is not None else op.lte
            metadata[c.key] = op
        return cls(
            agent_id=f.agent_id,
            session_id=f.session_id,
            created_after=f.created_after,
            created_before=f.created_before,
            metadata=metadata,
            occurred_after=f.occurred_after,
            occurred_before=f.occurred_before,
        )


Depth = Annotated[int, Meta(ge=1, le=1000)]
Share = Annotated[float, Meta(ge=0.0, le=1.0)]


class SearchBody(_In):
    """A search; the retrieval fields left out take the server's ``search`` settings."""

    user_id: IdStr
    query: Content | None = None
    vector: list[float] | None = None
    #: Above the server's limits.search_max_limit, that many are returned.
    limit: Annotated[int, Meta(ge=1)] = 10
    min_score: float | None = None
    filters: SearchFilters | None = None
    #: ``dense`` (embeddings), ``lexical`` (BM25-style terms) or ``hybrid`` (both, fused).
    mode: SearchMode | None = None
    #: ``rrf`` (reciprocal rank fusion) or ``weighted`` (normalised scores).
    fusion: FusionMethod | None = None
    rrf_k: Annotated[int, Meta(ge=1, le=1000)] | None = None
    #: Candidates each retriever hands to fusion.
    dense_depth: Depth | None = None
    lexical_depth: Depth | None = None
    #: The dense ranking's share in fusion (0..1).
    dense_weight: Share | None = None
    #: How much a memory's age (occurred_at, else created_at) lowers its score (0: none).
    recency_weight: Share | None = None
    #: At least a minute (0.001 days).
    recency_half_life_days: Annotated[float, Meta(ge=0.001, le=36_500)] | None = None
    #: Reorder with the server's reranker (404 not_enabled when none is configured).
    rerank: bool | None = None
    #: Return, per result, the rank each retriever gave it.
    explain: bool | None = None

    def to_domain(self) -> RecallQuery:
        filters = self.filters.to_domain() if self.filters else SearchFilter()
        retrieval = RetrievalChoice(**{name: getattr(self, name) for name in _RETRIEVAL_FIELDS})
        return RecallQuery(
            self.user_id, self.query, self.vector, self.limit, self.min_score, filters, retrieval
        )

    @classmethod
    def of(cls, q: RecallQuery) -> SearchBody:
        """The request that ``to_domain`` turns into ``q`` (what warmup replays)."""
        filters = SearchFilters.of(q.filters) if q.filters != SearchFilter() else None
        return cls(
            user_id=q.user_id,
            query=q.query,
            vector=q.vector,
            limit=q.limit,
            min_score=q.min_score,
            filters=filters,
            **{name: getattr(q.retrieval, name) for name in _RETRIEVAL_FIELDS},
        )


_RETRIEVAL_FIELDS = tuple(f.name for f in dataclass_fields(RetrievalChoice))


class MemoryRead(Struct):
    id: UUID
    user_id: str
    content: str
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    version: int
    content_hash: str
    agent_id: str | None
    session_id: str | None
    expires_at: datetime | None
    occurred_at: datetime | None = None

    @classmethod
    def of(cls, m: Memory) -> MemoryRead:
        return cls(
            m.id,
            m.user_id,
            m.content,
            dict(m.metadata),
            m.created_at,
            m.updated_at,
            m.version,
            m.content_hash,
            m.agent_id,
            m.session_id,
            m.expires_at,
            m.occurred_at,
        )


class BatchRead(Struct):
    items: list[MemoryRead]
    created: int


class MemoryPage(Struct):
    items: list[MemoryRead]
    next_cursor: str | None


class HistoryRead(Struct):
    event: str
    version: int
    content: str
    metadata: dict[str, Any]
    at: datetime

    @classmethod
    def of(cls, h: HistoryEvent) -> HistoryRead:
        return cls(h.event.value, h.version, h.content, dict(h.metadata), h.at)


class HistoryList(Struct):
    items: list[HistoryRead]


class Deleted(Struct):
    deleted: int


class SearchResult(Struct, omit_defaults=True):
    memory: MemoryRead
    score: float
    #: With ``explain``: which retrievers found it (``dense``, ``lexical``, ``rerank``)
    #: and at which rank, 1 the best.
    ranks: dict[str, int] | None = None


class SearchResponse(Struct):
    results: list[SearchResult]
    took_ms: float
    cache: str = "off"
    """``hit`` (served from the result cache), ``miss`` (computed, then cached),
    ``bypass`` (cache unavailable, computed) or ``off`` (no result cache)."""


class ErrorInfo(Struct):
    code: str
    message: str
    details: dict[str, Any] = {}


class ErrorBody(Struct):
    """Every error answer: ``{"error": {"code", "message", "details"}}``."""

    error: ErrorInfo
