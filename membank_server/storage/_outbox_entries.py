"""What the outbox queues: an operation and its JSON payload, and how a store replays it.

One entry per write: ``op`` (``upsert``, ``delete_user`` or ``purge_expired``) and a
payload (whole records in the payload layout of
:mod:`membank_server.storage._payload` plus their vectors, a user id, or a time).
Every operation is idempotent when replayed in order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from membank_server.domain.errors import ConfigError, MembankError
from membank_server.domain.model import MemoryRecord
from membank_server.domain.ports import MemoryStore
from membank_server.storage._payload import (
    history_event_from_payload,
    history_event_to_payload,
    legacy_history,
    record_from_payload,
    record_to_payload,
)

__all__ = [
    "DELETE_USER",
    "PURGE_EXPIRED",
    "UPSERT",
    "DrainReport",
    "Entry",
    "OutboxEntry",
    "apply_entry",
    "decode_records",
    "delete_user_entry",
    "purge_entry",
    "upsert_entry",
    "users_of",
]

UPSERT, DELETE_USER, PURGE_EXPIRED = "upsert", "delete_user", "purge_expired"
#: What is queued: an operation and its JSON payload.
Entry = tuple[str, dict[str, Any]]


def upsert_entry(records: Sequence[MemoryRecord]) -> Entry:
    return UPSERT, {"records": [_entry_record(r) for r in records]}


def _entry_record(r: MemoryRecord) -> dict[str, Any]:
    entry = {
        "id": str(r.memory.id),
        "payload": record_to_payload(r),
        "vector": list(r.vector),
        "history": [history_event_to_payload(r.memory, h) for h in r.history],
    }
    if r.terms is not None:
        # The caller's terms (keyed hashes under encryption): the other store needs
        # the same ones, and cannot derive them from sealed content.
        entry["terms"] = list(r.terms)
    return entry


def delete_user_entry(user_id: str) -> Entry:
    return DELETE_USER, {"user_id": user_id}


def purge_entry(now: datetime) -> Entry:
    return PURGE_EXPIRED, {"now": now.isoformat()}


def decode_records(payload: Mapping[str, Any]) -> list[MemoryRecord]:
    # Entries queued before history moved out of the payload carry it inside it.
    return [
        replace(
            record_from_payload(
                r["id"],
                r["payload"],
                r["vector"] or None,
                tuple(history_event_from_payload(h) for h in r.get("history", ()))
                or legacy_history(r["payload"])
                or (),
            ),
            terms=tuple(r["terms"]) if "terms" in r else None,
        )
        for r in payload["records"]
    ]


def users_of(entries: Sequence[Entry]) -> list[str]:
    users: set[str] = set()
    for op, payload in entries:
        if op == UPSERT:
            users.update(r["payload"]["user_id"] for r in payload["records"])
        elif op == DELETE_USER:
            users.add(payload["user_id"])
    return sorted(users)


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A queued write as read back: its place in the queue and how often it failed."""

    id: int
    op: str
    payload: Mapping[str, Any]
    attempts: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DrainReport:
    """What one :meth:`~membank_server.storage.outbox.PgOutbox.drain` did.

    ``applied`` were applied and deleted; ``failed`` is the entry that stopped
    the pass, with its ``error``; ``wait`` is how long until the head of the
    queue is due again (None when the queue ran dry); ``busy`` means another
    drainer held the queue.
    """

    applied: tuple[OutboxEntry, ...] = ()
    failed: OutboxEntry | None = None
    error: MembankError | None = None
    wait: float | None = None
    busy: bool = False


async def apply_entry(store: MemoryStore, entry: OutboxEntry) -> None:
    """Replay one queued write on ``store``."""
    if entry.op == UPSERT:
        await store.upsert(decode_records(entry.payload))
    elif entry.op == DELETE_USER:
        await store.delete_user(entry.payload["user_id"])
    elif entry.op == PURGE_EXPIRED:
        await store.purge_expired(datetime.fromisoformat(entry.payload["now"]))
    else:
        raise ConfigError(f"the outbox holds an operation this version lacks: {entry.op!r}")
