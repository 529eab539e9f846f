"""Reads of a Qdrant collection that go page by page: usage, duplicates, expired points."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

from qdrant_client import AsyncQdrantClient, models

from membank_server.domain.errors import IntegrityError
from membank_server.domain.model import Memory, MemoryRecord, Usage
from membank_server.storage._checked import checked_memory, checked_record, sound
from membank_server.storage._payload import BYTES, HISTORY, Cond, live_conditions
from membank_server.storage._qdrant_collection import Call, qdrant_filter
from membank_server.storage._qdrant_history import QdrantHistory

__all__ = [
    "WITHOUT_HISTORY",
    "expired_ids",
    "find_by_hash",
    "memories_page",
    "records_page",
    "usage",
]

WITHOUT_HISTORY = models.PayloadSelectorExclude(exclude=[HISTORY])


async def memories_page(
    call: Call, collection: str, what: str, flt: models.Filter, limit: int, offset: str | None
) -> tuple[list[Memory], str | None]:
    """One page of memories matching ``flt`` (damaged ones left out), and the next offset."""
    records, next_offset = await call(
        what,
        partial(
            AsyncQdrantClient.scroll, collection_name=collection, scroll_filter=flt,
            limit=limit, offset=offset, with_payload=WITHOUT_HISTORY,
        ),
    )  # fmt: skip
    memories = sound(records, lambda r: checked_memory(str(r.id), r.payload))
    return memories, (str(next_offset) if next_offset is not None else None)


async def usage(call: Call, collection: str, user_id: str) -> Usage:
    """The user's live memories and the bytes of their content and metadata."""
    flt = qdrant_filter(live_conditions(user_id, datetime.now(UTC)))
    memories = total = 0
    offset: Any = None
    while True:
        records, offset = await call(
            "measure a user",
            partial(
                AsyncQdrantClient.scroll, collection_name=collection, scroll_filter=flt,
                limit=2000, offset=offset, with_payload=[BYTES],
            ),
        )  # fmt: skip
        memories += len(records)
        total += sum(int((r.payload or {}).get(BYTES, 0)) for r in records)
        if offset is None:
            return Usage(memories, total)


async def expired_ids(call: Call, collection: str, now: datetime) -> list[str]:
    expired = qdrant_filter([Cond("range", "expires_ts", lte=now.timestamp())])
    ids: list[str] = []
    offset: Any = None
    while True:
        records, offset = await call(
            "find expired memories",
            partial(
                AsyncQdrantClient.scroll, collection_name=collection, scroll_filter=expired,
                limit=1000, offset=offset, with_payload=False,
            ),
        )  # fmt: skip
        ids.extend(str(r.id) for r in records)
        if offset is None:
            return ids


async def find_by_hash(
    call: Call, collection: str, pairs: Sequence[tuple[str, str]], now: datetime
) -> dict[tuple[str, str], Memory]:
    """The live memory of each (user, content hash) pair that has one."""
    by_user: dict[str, set[str]] = {}
    for user_id, digest in pairs:
        by_user.setdefault(user_id, set()).add(digest)
    if not by_user:
        return {}
    flt = models.Filter(
        should=[
            qdrant_filter([*live_conditions(u, now), Cond("any", "content_hash", sorted(hs))])
            for u, hs in sorted(by_user.items())
        ]
    )
    out: dict[tuple[str, str], Memory] = {}
    offset: str | None = None
    while True:
        # Pages until the end: duplicates of one pair must not hide another pair.
        memories, offset = await memories_page(call, collection, "find by hash", flt, 256, offset)
        for m in memories:
            out.setdefault((m.user_id, m.content_hash), m)
        if offset is None:
            return out


async def records_page(
    call: Call,
    collection: str,
    history: QdrantHistory,
    cursor: str | None,
    limit: int,
    *,
    dimension: int,
    unit: bool,
) -> tuple[list[MemoryRecord], str | None]:
    """A page of whole records with their history (a copy, a backup); damaged ones
    are left out (``verify`` lists them)."""
    records, next_offset = await call(
        "scan",
        lambda c: c.scroll(
            collection, limit=limit, offset=cursor, with_payload=True, with_vectors=True
        ),
    )
    events = await history.read_many([str(r.id) for r in records])
    out = []
    for r in records:
        payload = r.payload or {}
        version = int(payload.get("version", 0))
        kept = tuple(h for h in events.get(str(r.id), ()) if h.version <= version)
        try:
            out.append(
                checked_record(str(r.id), payload, r.vector, kept, dimension=dimension, unit=unit)
            )
        except IntegrityError:
            continue
    return out, str(next_offset) if next_offset is not None else None
