"""Rows of the memories tables as membank's records, and the column lists the SQL names.

A row's content is checked against its hash on the way out (``domain.integrity``),
and a vector's shape when the caller gives the dimension; a failing row raises
``IntegrityError`` (see :mod:`membank_server.storage._checked`).
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from membank_server.domain.integrity import SEALED_PREFIX, vector_problem
from membank_server.domain.model import (
    Event,
    HistoryEvent,
    Memory,
    MemoryRecord,
    content_hash,
)
from membank_server.storage._checked import damaged

__all__ = [
    "HISTORY_COLUMNS",
    "LIVE",
    "MEMORY_COLUMNS",
    "MEMORY_SELECT",
    "TEMP_HISTORY",
    "TEMP_ROWS",
    "history_from_rows",
    "memory_from_row",
    "record_from_row",
    "record_to_row",
    "to_json",
]

MEMORY_COLUMNS = (
    "id", "user_id", "agent_id", "session_id", "content", "metadata", "created_at",
    "updated_at", "expires_at", "version", "content_hash", "state", "deleted_at",
    "idempotency", "embedding", "occurred_at", "lexemes",
)  # fmt: skip
HISTORY_COLUMNS = (
    "memory_id", "user_id", "version", "event", "content", "metadata", "at",
)  # fmt: skip
#: The Memory fields of a row aliased ``m``.
MEMORY_SELECT = ", ".join(f"m.{c}" for c in (*MEMORY_COLUMNS[:11], "occurred_at"))
#: Live rows of ``m`` at the time bound to ``$2``.
LIVE = "m.state = 'live' AND (m.expires_at IS NULL OR m.expires_at > $2)"
#: Per-connection temporary tables that COPY fills before the merge.
TEMP_ROWS, TEMP_HISTORY = "_membank_rows", "_membank_history"


def to_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def memory_from_row(row: Any) -> Memory:
    """A row's memory, its content checked against its hash (``domain.integrity``)."""
    memory = _memory(row)
    sealed = memory.content.startswith(SEALED_PREFIX)
    if not sealed and content_hash(memory.content) != memory.content_hash:
        raise damaged(memory.id, "content does not match its hash")
    return memory


def _memory(row: Any) -> Memory:
    return Memory(
        id=UUID(bytes=row["id"].bytes),
        user_id=row["user_id"],
        content=row["content"],
        metadata=json.loads(row["metadata"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        version=row["version"],
        content_hash=row["content_hash"],
        agent_id=row["agent_id"],
        session_id=row["session_id"],
        expires_at=row["expires_at"],
        occurred_at=row["occurred_at"],
    )


def history_from_rows(rows: Any) -> tuple[HistoryEvent, ...]:
    """Events from ``(event, version, content, metadata, at)`` rows or tuples."""
    return tuple(
        HistoryEvent(Event(event), version, content, json.loads(metadata), at)
        for event, version, content, metadata, at in rows or ()
    )


def record_from_row(row: Any, dimension: int | None = None) -> MemoryRecord:
    embedding = row["embedding"]
    memory = memory_from_row(row)
    vector = embedding.to_list() if embedding is not None else []
    if dimension is not None and vector:
        problem = vector_problem(vector, None, dimension, unit=False)
        if problem is not None:
            raise damaged(memory.id, problem)
    return MemoryRecord(
        memory=memory,
        vector=vector,
        history=history_from_rows(row["history"]) if "history" in row else (),
        deleted_at=row["deleted_at"],
        idempotency=row["idempotency"],
    )


def record_to_row(r: MemoryRecord, lexemes: str) -> tuple[Any, ...]:
    """A record as a row of ``MEMORY_COLUMNS``; ``lexemes``: its terms as tsvector text."""
    m = r.memory
    return (
        m.id, m.user_id, m.agent_id, m.session_id, m.content, to_json(dict(m.metadata)),
        m.created_at, m.updated_at, m.expires_at, m.version, m.content_hash,
        "deleted" if r.deleted_at else "live", r.deleted_at, r.idempotency,
        list(r.vector) if r.vector else None, m.occurred_at, lexemes,
    )  # fmt: skip
