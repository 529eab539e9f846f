"""Reads of an Edge shard that go page by page: usage, duplicates, expired points.

Each page is its own call on a reader thread, so a long scan lets other reads in
between its pages.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import qdrant_edge as qe

from membank_server.domain.model import HistoryEvent, Memory, Page, SearchFilter, Usage
from membank_server.storage._checked import checked_memory, owned_live, sound
from membank_server.storage._edge_ops import edge_filter
from membank_server.storage._edge_reads import scroll
from membank_server.storage._edge_shard import ShardThreads
from membank_server.storage._payload import (
    BYTES,
    HISTORY,
    Cond,
    live_conditions,
    search_conditions,
)

__all__ = [
    "NO_HISTORY",
    "expired_ids",
    "find_by_hash",
    "histories",
    "list_page",
    "pages",
    "usage",
]

# Points of earlier versions may still carry a history field until moved at open.
NO_HISTORY = qe.PayloadSelector.Exclude([HISTORY])
_BYTES_ONLY = qe.PayloadSelector.Include([BYTES])


async def pages(threads: ShardThreads, **request: Any) -> tuple[list[Any], Any]:
    """One page of a scroll (its points, and the offset of the next or None)."""
    return await threads.read(lambda shard: scroll(shard, **request))


async def list_page(
    threads: ShardThreads,
    user_id: str,
    now: datetime,
    limit: int,
    cursor: str | None,
    agent_id: str | None,
    session_id: str | None,
) -> Page:
    """One page of the user's live memories, by agent or session when given."""
    by = SearchFilter(agent_id=agent_id, session_id=session_id)
    conds = search_conditions(user_id, now, by)
    records, next_offset = await pages(
        threads, offset=cursor, limit=limit, filter=edge_filter(conds), with_payload=NO_HISTORY
    )
    return Page(
        items=tuple(
            sound(records, lambda r: owned_live(checked_memory(r.id, r.payload), user_id, now))
        ),
        next_cursor=str(next_offset) if next_offset is not None else None,
    )


async def usage(threads: ShardThreads, user_id: str) -> Usage:
    """The user's live memories and the bytes of their content and metadata."""
    conds = edge_filter(live_conditions(user_id, datetime.now(UTC)))
    memories = total = 0
    offset: Any = None
    while True:
        points, offset = await pages(
            threads, offset=offset, limit=2000, filter=conds, with_payload=_BYTES_ONLY
        )
        memories += len(points)
        total += sum(int((p.payload or {}).get(BYTES, 0)) for p in points)
        if offset is None:
            return Usage(memories, total)


async def expired_ids(threads: ShardThreads, now: datetime) -> list[Any]:
    expired = edge_filter([Cond("range", "expires_ts", lte=now.timestamp())])
    ids: list[Any] = []
    offset: Any = None
    while True:
        points, offset = await pages(
            threads, offset=offset, limit=1000, filter=expired, with_payload=False
        )
        ids.extend(str(p.id) for p in points)
        if offset is None:
            return ids


async def find_by_hash(
    threads: ShardThreads, pairs: Sequence[tuple[str, str]], now: datetime
) -> dict[tuple[str, str], Memory]:
    """The live memory of each (user, content hash) pair that has one."""
    if not pairs:
        return {}
    by_user: dict[str, set[str]] = {}
    for user_id, digest in pairs:
        by_user.setdefault(user_id, set()).add(digest)
    flt = qe.Filter(
        should=[
            edge_filter([*live_conditions(u, now), Cond("any", "content_hash", sorted(set(hs)))])
            for u, hs in by_user.items()
        ]
    )
    wanted = set(pairs)
    out: dict[tuple[str, str], Memory] = {}
    offset: Any = None
    while True:
        records, offset = await pages(
            threads, offset=offset, limit=len(pairs) + 16, filter=flt, with_payload=NO_HISTORY
        )
        for memory in sound(records, lambda r: checked_memory(r.id, r.payload)):
            key = (memory.user_id, memory.content_hash)
            if key in wanted and key not in out:
                out[key] = memory
        if offset is None or len(out) == len(wanted):
            return out


async def histories(
    threads: ShardThreads, memories: Sequence[Memory]
) -> list[tuple[HistoryEvent, ...]]:
    """Each memory's history up to its version, whole (a scan, a backup).

    The writer applies a group's points to the shard before it commits the group's
    history, so a scan may meet a point of a write not yet acknowledged whose events
    are not visible yet. Such a page waits for the group to commit (a call on the
    writer thread runs between groups) and reads those events again: a record is
    never returned without the event of its own version.
    """
    history = threads.history
    events = await threads.read(lambda _: history.read_many([str(m.id) for m in memories]))

    def upto(m: Memory) -> tuple[HistoryEvent, ...]:
        return tuple(h for h in events.get(str(m.id), ()) if h.version <= m.version)

    late = [str(m.id) for m in memories if not any(h.version == m.version for h in upto(m))]
    if late:
        await threads.on_writer(lambda: None)
        events.update(await threads.read(lambda _: history.read_many(late)))
    return [upto(m) for m in memories]
