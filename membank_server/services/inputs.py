"""What callers hand to the services, and the checks that depend on settings."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from membank_server.domain.errors import DimensionMismatch, InvalidInput
from membank_server.domain.model import SearchFilter

_VISIBLE = re.compile(r"\S")
#: The largest vector component accepted (the OpenAPI schema says so too).
VECTOR_BOUND = 1e6
#: The history metadata key of a ``NewMemory.note`` (fact extraction's decision and reason).
NOTE_KEY = "membank_extraction"

__all__ = [
    "NOTE_KEY",
    "VECTOR_BOUND",
    "Limits",
    "MemoryPatch",
    "NewMemory",
    "RecallQuery",
    "check_vector",
    "request_digest",
]


@dataclass(frozen=True, slots=True)
class Limits:
    content_max_chars: int = 8192
    metadata_max_bytes: int = 16 * 1024
    batch_max_items: int = 1000
    search_max_limit: int = 100
    list_max_limit: int = 1000

    def check_content(self, content: str, where: dict[str, Any], field: str = "content") -> None:
        # \S as the API's pattern has it (Python's re), not str.strip's notion of space.
        if not _VISIBLE.search(content):
            raise InvalidInput(f"{field} must not be blank", {**where, "field": field})
        if len(content) > self.content_max_chars:
            raise InvalidInput(
                f"{field} is {len(content)} characters; at most {self.content_max_chars} allowed",
                {**where, "field": field, "limit": self.content_max_chars},
            )

    def check_metadata(self, metadata: Mapping[str, Any], where: dict[str, Any]) -> None:
        size = len(json.dumps(metadata, separators=(",", ":"), ensure_ascii=False).encode())
        if size > self.metadata_max_bytes:
            raise InvalidInput(
                f"metadata is {size} bytes as JSON; at most {self.metadata_max_bytes} allowed",
                {**where, "field": "metadata", "limit": self.metadata_max_bytes},
            )


def check_vector(vector: Sequence[float], dimension: int, where: dict[str, Any]) -> None:
    if len(vector) != dimension:
        raise DimensionMismatch(
            f"vector has {len(vector)} dimensions; this server stores {dimension}",
            {**where, "field": "vector", "expected": dimension, "got": len(vector)},
        )
    # Bounded so that sums of squares stay far inside float32, which the stores use.
    largest = max(map(abs, vector), default=0.0)
    if not largest <= VECTOR_BOUND or largest == 0:  # NaN fails the first test too
        raise InvalidInput(
            f"vector must be numbers within ±{VECTOR_BOUND:g}, not all zero",
            {**where, "field": "vector"},
        )


def check_expiry(expires_at: datetime | None, now: datetime, where: dict[str, Any]) -> None:
    """``expires_at`` needs a time zone. A time already past is accepted, as a key's
    expiry in Redis is: the memory is stored expired, so it is never read and the next
    purge removes it (the OpenAPI schema cannot say "in the future", and a schema must
    not promise what the server refuses)."""
    if expires_at is not None and expires_at.tzinfo is None:
        raise InvalidInput(
            "expires_at needs a timezone (e.g. 2030-01-01T00:00:00Z)",
            {**where, "field": "expires_at"},
        )


@dataclass(frozen=True, slots=True)
class NewMemory:
    """A memory to store; ``id`` makes it an idempotent upsert, ``vector`` skips embedding.

    ``note``: keys the history event of this write adds to the memory's metadata (why
    it was written: fact extraction's decision and reason); the memory keeps its own.
    """

    user_id: str
    content: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    agent_id: str | None = None
    session_id: str | None = None
    expires_at: datetime | None = None
    id: UUID | None = None
    vector: list[float] | None = None
    note: Mapping[str, Any] | None = None


def request_digest(item: NewMemory) -> str:
    """A digest of everything a create request says, to tell a replay from a reuse."""
    body = {
        "user_id": item.user_id,
        "content": item.content,
        "metadata": item.metadata,
        "agent_id": item.agent_id,
        "session_id": item.session_id,
        "expires_at": item.expires_at.isoformat() if item.expires_at else None,
        "id": str(item.id) if item.id else None,
        "vector": item.vector,
    }
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class MemoryPatch:
    """A change to a memory; fields left None stay as they are."""

    content: str | None = None
    metadata: Mapping[str, Any] | None = None
    expires_at: datetime | None = None
    vector: list[float] | None = None
    note: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class RecallQuery:
    """A semantic search: exactly one of ``query`` (text) or ``vector``."""

    user_id: str
    query: str | None = None
    vector: list[float] | None = None
    limit: int = 10
    min_score: float | None = None
    filters: SearchFilter = field(default_factory=SearchFilter)
