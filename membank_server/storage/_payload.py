"""The payload layout shared by the Qdrant-family stores, and the neutral filter spec.

A point's payload holds the record: the memory fields, numeric timestamps for
range filters, its state (``live`` or ``deleted``) and its size in a quota's terms
(``bytes``). History is kept apart (``history_event_to_payload``), one entry per
event keyed by ``(memory id, version, event)``, so a read never loads it. Points
written before that carried their history in a ``history`` payload field:
:func:`legacy_history` reads it (the stores move it out when they open). Both
Qdrant adapters (Edge and qdrant-client) write and read exactly this layout, so a
collection can move between them.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid5

from membank_server.domain.integrity import CHECK, payload_check, vector_figures
from membank_server.domain.model import (
    Event,
    HistoryEvent,
    Memory,
    MemoryRecord,
    SearchFilter,
    stored_bytes,
)

__all__ = [
    "BYTES",
    "HISTORY",
    "INDEXED_KEYWORDS",
    "INDEXED_NUMBERS",
    "LIVE",
    "NEVER",
    "VFIG",
    "Cond",
    "canonical",
    "history_event_from_payload",
    "history_event_to_payload",
    "history_point_id",
    "legacy_history",
    "live_conditions",
    "record_from_payload",
    "record_to_payload",
    "search_conditions",
]

LIVE = "live"
DELETED = "deleted"
HISTORY = "history"
BYTES = "bytes"
#: The vector's figures (see ``domain.integrity``).
VFIG = "vfig"
_HISTORY_IDS = UUID("0b7a3c52-95b2-4f0e-a1de-64c3f2a90c17")
#: expires_ts of a memory that never expires: far beyond any real date.
NEVER = 253402300799.0  # 9999-12-31T23:59:59Z

INDEXED_KEYWORDS = ("content_hash", "state", "agent_id", "session_id")
INDEXED_NUMBERS = ("created_ts", "expires_ts", "occurred_ts")


@dataclass(frozen=True, slots=True)
class Cond:
    """One filter condition, independent of the client library.

    ``op`` is ``eq`` (value), ``any`` (values), ``range`` (gte/lte/gt), or ``set`` (the
    key holds something other than null or an empty list).
    """

    op: str
    key: str
    value: Any = None
    gte: float | None = None
    lte: float | None = None
    gt: float | None = None


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat()


def _dt(value: str) -> datetime:
    return datetime.fromisoformat(value)


def record_to_payload(record: MemoryRecord) -> dict[str, Any]:
    m = record.memory
    payload: dict[str, Any] = {
        "user_id": m.user_id,
        "content": m.content,
        "metadata": dict(m.metadata),
        "created_at": _iso(m.created_at),
        "updated_at": _iso(m.updated_at),
        "created_ts": m.created_at.timestamp(),
        "expires_ts": m.expires_at.timestamp() if m.expires_at else NEVER,
        "version": m.version,
        "content_hash": m.content_hash,
        "state": DELETED if record.deleted_at else LIVE,
        BYTES: stored_bytes(m),
        "id": str(m.id),
    }
    for key, value in (
        ("agent_id", m.agent_id),
        ("session_id", m.session_id),
        ("expires_at", m.expires_at and _iso(m.expires_at)),
        ("deleted_at", record.deleted_at and _iso(record.deleted_at)),
        ("idempotency", record.idempotency),
        ("occurred_at", m.occurred_at and _iso(m.occurred_at)),
        ("occurred_ts", m.occurred_at and m.occurred_at.timestamp()),
    ):
        if value is not None:
            payload[key] = value
    if record.vector:
        payload[VFIG] = vector_figures(record.vector)
    payload[CHECK] = payload_check(canonical(payload))
    return payload


def canonical(node: Any) -> Any:
    """A payload as the engines may give it back, for its check: integers beyond 2**53
    come back as floats (JSON numbers), and Qdrant parses and prints floats with an
    error of a unit in the last place (0.9999999999999999 comes back as 1.0, and a
    value can move by one ULP across a restart). So floats count at float32 precision:
    one ULP of a double crosses a float32 rounding boundary about once in 10**8, and
    any change that matters crosses one."""
    if isinstance(node, dict):
        return {k: canonical(v) for k, v in node.items()}
    if isinstance(node, list):
        return [canonical(v) for v in node]
    if isinstance(node, bool):
        return node
    if isinstance(node, int) and abs(node) > 2**53:
        node = float(node)
    if isinstance(node, float):
        try:
            return struct.unpack("<f", struct.pack("<f", node))[0]
        except OverflowError:
            return float(f"{node:.7g}")
    return node


def memory_from_payload(point_id: UUID | str, p: Mapping[str, Any]) -> Memory:
    expires, occurred = p.get("expires_at"), p.get("occurred_at")
    return Memory(
        id=point_id if isinstance(point_id, UUID) else UUID(str(point_id)),
        user_id=p["user_id"],
        content=p["content"],
        metadata=p.get("metadata") or {},
        created_at=_dt(p["created_at"]),
        updated_at=_dt(p["updated_at"]),
        version=int(p["version"]),
        content_hash=p["content_hash"],
        agent_id=p.get("agent_id"),
        session_id=p.get("session_id"),
        expires_at=_dt(expires) if expires else None,
        occurred_at=_dt(occurred) if occurred else None,
    )


def record_from_payload(
    point_id: UUID | str,
    p: Mapping[str, Any],
    vector: list[float] | None,
    history: tuple[HistoryEvent, ...] = (),
) -> MemoryRecord:
    deleted = p.get("deleted_at")
    return MemoryRecord(
        memory=memory_from_payload(point_id, p),
        vector=vector or [],
        history=history,
        deleted_at=_dt(deleted) if deleted else None,
        idempotency=p.get("idempotency"),
    )


def _event(h: Mapping[str, Any]) -> HistoryEvent:
    return HistoryEvent(
        event=Event(h["event"]),
        version=int(h["version"]),
        content=h["content"],
        metadata=h.get("metadata") or {},
        at=_dt(h["at"]),
    )


def legacy_history(p: Mapping[str, Any]) -> tuple[HistoryEvent, ...] | None:
    """The history an older point carried in its payload; None when it carries none."""
    raw = p.get(HISTORY)
    if raw is None:
        return None
    return tuple(_event(h) for h in json.loads(raw or "[]"))


def history_point_id(memory: Memory, h: HistoryEvent) -> str:
    """The id of one history event: a write of the same (version, event) replaces it.

    The user is part of it: events are written before their record (and before a
    store can tell that another user owns the id), so a refused write's events must
    never replace the owner's."""
    return str(uuid5(_HISTORY_IDS, f"{memory.user_id}|{memory.id}|{h.version}|{h.event.value}"))


def history_event_to_payload(memory: Memory, h: HistoryEvent) -> dict[str, Any]:
    payload = {
        "memory_id": str(memory.id),
        "user_id": memory.user_id,
        "version": h.version,
        "event": h.event.value,
        "content": h.content,
        # A JSON string: metadata is returned, never filtered on, and the engines
        # convert a nested payload field by field.
        "metadata": json.dumps(dict(h.metadata), ensure_ascii=False, separators=(",", ":")),
        "at": _iso(h.at),
        "at_ts": h.at.timestamp(),
    }
    payload[CHECK] = payload_check(canonical(payload))
    return payload


def history_event_from_payload(p: Mapping[str, Any]) -> HistoryEvent:
    return _event({**p, "metadata": json.loads(p.get("metadata") or "{}")})


def live_conditions(user_id: str, now: datetime) -> list[Cond]:
    """A user's memories that are neither deleted nor expired."""
    return [
        Cond("eq", "user_id", user_id),
        Cond("eq", "state", LIVE),
        Cond("range", "expires_ts", gt=now.timestamp()),
    ]


def search_conditions(user_id: str, now: datetime, f: SearchFilter) -> list[Cond]:
    conds = live_conditions(user_id, now)
    if f.agent_id is not None:
        conds.append(Cond("eq", "agent_id", f.agent_id))
    if f.session_id is not None:
        conds.append(Cond("eq", "session_id", f.session_id))
    for key, after, before in (
        ("created_ts", f.created_after, f.created_before),
        ("occurred_ts", f.occurred_after, f.occurred_before),
    ):
        if after is not None or before is not None:
            conds.append(
                Cond(
                    "range",
                    key,
                    gte=after.timestamp() if after else None,
                    lte=before.timestamp() if before else None,
                )
            )
    for mc in f.metadata:
        key = f"metadata.{mc.key}"
        if mc.any_of is not None:
            conds.append(Cond("any", key, list(mc.any_of)))
        elif isinstance(mc.equals, float):
            # Exact match takes str/int/bool only; a float equality is a closed range.
            conds.append(Cond("range", key, gte=mc.equals, lte=mc.equals))
        elif mc.equals is not None:
            conds.append(Cond("eq", key, mc.equals))
        elif mc.gte is None and mc.lte is None:
            conds.append(Cond("set", key))
        else:
            conds.append(Cond("range", key, gte=mc.gte, lte=mc.lte))
    return conds
