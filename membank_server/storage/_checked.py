"""Reading Qdrant-family payloads back with their integrity checked (``domain.integrity``).

:func:`checked_memory` and :func:`checked_record` raise ``IntegrityError`` (after
logging the id once) for a record whose payload or vector is not the one written;
:func:`sound` keeps the records that pass and leaves the others out, for listings
and searches. Points written before check values existed carry none: only what can
be checked without them is (required fields, the content against its hash, the
vector's shape).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from membank_server.domain.errors import IntegrityError
from membank_server.domain.integrity import (
    CHECK,
    SEALED_PREFIX,
    Damage,
    IntegrityReport,
    payload_check,
    report_damage,
    vector_problem,
)
from membank_server.domain.model import HistoryEvent, Memory, MemoryRecord, content_hash
from membank_server.storage._lexical import dense_part
from membank_server.storage._payload import (
    VFIG,
    canonical,
    memory_from_payload,
    record_from_payload,
)

__all__ = [
    "checked_memory",
    "checked_record",
    "damaged",
    "owned_live",
    "payload_problem",
    "sound",
    "tally",
]

_T = TypeVar("_T")
_S = TypeVar("_S")


def damaged(memory_id: object, problem: str) -> IntegrityError:
    """The error for a damaged record, logged once (id and problem, never content)."""
    report_damage(str(memory_id), problem)
    return IntegrityError(
        f"memory {memory_id} is damaged in the store ({problem}): it is not served",
        {"memory_id": str(memory_id), "problem": problem},
    )


def payload_problem(point_id: object, p: Mapping[str, Any]) -> str | None:
    if CHECK in p and payload_check(canonical(dict(p))) != p[CHECK]:
        return "payload differs from the one written"
    if "id" in p and p["id"] != str(point_id):
        return "record is stored under another id"
    return None


def checked_memory(point_id: UUID | str, p: Mapping[str, Any] | None) -> Memory:
    if not p:
        raise damaged(point_id, "payload is missing")
    problem = payload_problem(point_id, p)
    if problem is not None:
        raise damaged(point_id, problem)
    try:
        memory = memory_from_payload(point_id, p)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise damaged(point_id, f"a field is missing or malformed ({type(exc).__name__})") from exc
    sealed = memory.content.startswith(SEALED_PREFIX)
    if not sealed and content_hash(memory.content) != memory.content_hash:
        raise damaged(point_id, "content does not match its hash")
    return memory


def checked_record(
    point_id: UUID | str,
    p: Mapping[str, Any] | None,
    vector: Any,
    history: tuple[HistoryEvent, ...] = (),
    *,
    dimension: int,
    unit: bool,
) -> MemoryRecord:
    checked_memory(point_id, p)
    assert p is not None  # checked_memory refuses a missing payload
    vector = dense_part(vector)
    if vector is not None:
        if not isinstance(vector, list):
            raise damaged(point_id, "vector is missing or malformed")
        figures = p.get(VFIG)
        problem = vector_problem(vector, figures, dimension, unit=unit)
        if problem is not None:
            raise damaged(point_id, problem)
    return record_from_payload(point_id, p, vector, history)


def tally(
    report: IntegrityReport,
    versions: dict[str, int],
    point_id: object,
    payload: Any,
    vector: Any,
    *,
    dimension: int,
    unit: bool,
) -> None:
    """Check one point for a verify pass: count it, note its version, or record its
    damage (its version then -1, so history checks know it is unreadable)."""
    report.checked += 1
    key = str(point_id)
    try:
        record = checked_record(key, payload, vector, dimension=dimension, unit=unit)
    except IntegrityError as exc:
        user = payload.get("user_id") if isinstance(payload, dict) else None
        report.damaged.append(Damage(key, str(exc.details.get("problem")), user))
        versions[key] = -1
        return
    versions[key] = record.memory.version


def owned_live(memory: Memory, user_id: str, now: datetime) -> Memory:
    """``memory`` if it is ``user_id``'s; a filtered read (list, search) checks what the
    engine's index chose, so a damaged index cannot hand one tenant another's record.

    Raises:
        IntegrityError: the record does not match the filter that selected it.
    """
    if memory.user_id != user_id:
        raise damaged(memory.id, "an index returned it for another user")
    if memory.is_expired(now):
        raise damaged(memory.id, "an index returned it although it has expired")
    return memory


def sound(items: Iterable[_S], decode: Callable[[_S], _T]) -> list[_T]:
    """The decoded items that pass their checks; damaged ones are left out (and logged)."""
    kept: list[_T] = []
    for item in items:
        try:
            kept.append(decode(item))
        except IntegrityError:
            continue
    return kept
