"""Memories, their history, search filters and hits: plain frozen dataclasses."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

__all__ = [
    "USER_ID_PATTERN",
    "CollectionInfo",
    "DiskState",
    "Event",
    "HistoryEvent",
    "Memory",
    "MemoryRecord",
    "MetadataCondition",
    "Page",
    "SearchFilter",
    "SearchHit",
    "Usage",
    "VectorQuery",
    "content_hash",
    "stored_bytes",
]

#: user_id, agent_id and session_id: 1-128 characters of this set. Python's ``$`` also
#: matches before a final newline ("bob\n" would pass): ``(?!\n)`` makes it the end,
#: in Python and in the ECMAScript dialect OpenAPI readers use alike.
USER_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$(?!\n)")

MetadataValue = str | int | float | bool


class Event(StrEnum):
    ADD = "ADD"
    UPDATE = "UPDATE"
    DELETE = "DELETE"


def content_hash(content: str) -> str:
    """The digest that makes two memories of one user exact duplicates.

    NFC-normalised and stripped, so the same text typed twice is one memory;
    case and inner spacing still count, because they can carry meaning.
    """
    normal = unicodedata.normalize("NFC", content).strip()
    return hashlib.sha256(normal.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Memory:
    """One thing an agent knows about one end user."""

    id: UUID
    user_id: str
    content: str
    metadata: Mapping[str, Any]
    created_at: datetime
    updated_at: datetime
    version: int
    content_hash: str
    agent_id: str | None = None
    session_id: str | None = None
    expires_at: datetime | None = None
    #: When the thing happened or was said (``created_at`` is when it was stored).
    occurred_at: datetime | None = None

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    """One version of a memory as it was written."""

    event: Event
    version: int
    content: str
    metadata: Mapping[str, Any]
    at: datetime


@dataclass(frozen=True, slots=True)
class MemoryRecord:
    """What a store keeps for a memory: the memory, its vector and its history.

    A deleted memory stays as a tombstone (``deleted_at`` set) so its history
    can still be read; stores never return tombstones from list or search.
    ``idempotency`` is the digest of the request that created it under an
    ``Idempotency-Key``, so a replay can be told from a reuse.

    History is kept apart from the record, so that reading or changing a memory
    never reads its history. ``history`` is what a write adds (events are keyed by
    ``(version, event)``: one written again replaces the stored one, the others stay)
    and what ``MemoryStore.scan`` returns whole; ``MemoryStore.get`` leaves it empty
    (``MemoryStore.history`` reads it).
    """

    memory: Memory
    vector: list[float]
    history: tuple[HistoryEvent, ...] = ()
    deleted_at: datetime | None = None
    idempotency: str | None = None
    #: The lexical index terms, when the caller made them (``EncryptedStore``: keyed
    #: hashes); None: the store analyses ``memory.content`` itself.
    terms: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class MetadataCondition:
    """A condition on one metadata key: equality, membership or a range; with none of
    them, that the key is set (to anything but null or an empty list)."""

    key: str
    equals: MetadataValue | None = None
    any_of: tuple[str | int, ...] | None = None
    gte: float | None = None
    lte: float | None = None


@dataclass(frozen=True, slots=True)
class SearchFilter:
    agent_id: str | None = None
    session_id: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    metadata: tuple[MetadataCondition, ...] = ()
    #: On ``occurred_at``; a memory without one never matches these.
    occurred_after: datetime | None = None
    occurred_before: datetime | None = None


@dataclass(frozen=True, slots=True)
class VectorQuery:
    """A query within one user's live memories: nearest to ``vector``
    (``MemoryStore.search``), or best matching ``terms`` (``search_lexical``)."""

    user_id: str
    vector: list[float]
    limit: int
    now: datetime
    min_score: float | None = None
    filters: SearchFilter = field(default_factory=SearchFilter)
    #: The query's lexical index terms (``Analyzer.terms``), for ``search_lexical``.
    terms: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A found memory and its score; ``ranks``: which retrievers found it, at which
    rank (1 is the best), when the search was fused."""

    memory: Memory
    score: float
    ranks: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing; ``next_cursor`` is opaque and None on the last page."""

    items: tuple[Memory, ...]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class DiskState:
    """Free space under a store's folder, and how much it keeps in reserve."""

    free: int
    reserve: int

    @property
    def writable(self) -> bool:
        return self.free >= self.reserve


@dataclass(frozen=True, slots=True)
class Usage:
    """What one user stores: live memories, and the bytes of their content and metadata."""

    memories: int = 0
    bytes: int = 0


def stored_bytes(memory: Memory) -> int:
    """The size a memory counts for in a user's quota: UTF-8 content plus JSON metadata."""
    metadata = json.dumps(dict(memory.metadata), ensure_ascii=False, separators=(",", ":"))
    return len(memory.content.encode("utf-8")) + len(metadata.encode("utf-8"))


@dataclass(frozen=True, slots=True)
class CollectionInfo:
    backend: str
    name: str
    dimension: int
    distance: str
    points: int
    indexed_vectors: int
    segments: int
    extra: Mapping[str, Any] = field(default_factory=dict)
