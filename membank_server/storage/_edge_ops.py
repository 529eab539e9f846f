"""The pieces of ``EdgeStore`` that are not the store itself: filters for Qdrant Edge,
the group commit, and the offline work on a shard (moving history out of payloads
written by earlier versions, verifying every record).

All of it runs on ``EdgeStore``'s writer thread (or, for verification, its readers).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from typing import Any
from uuid import UUID

import numpy as np
import qdrant_edge as qe

from membank_server.domain.errors import Conflict, IntegrityError
from membank_server.domain.integrity import Damage, IntegrityReport
from membank_server.domain.model import HistoryEvent, Memory, MemoryRecord
from membank_server.storage._checked import tally
from membank_server.storage._edge_reads import is_damage, retrieve, scroll
from membank_server.storage._edge_wal import WalSync
from membank_server.storage._payload import (
    HISTORY,
    Cond,
    legacy_history,
    memory_from_payload,
    record_from_payload,
    record_to_payload,
)
from membank_server.storage._sqlite_history import SqliteHistory

__all__ = [
    "Op",
    "apply_group",
    "condition",
    "disk_full",
    "edge_filter",
    "history_problems",
    "move_legacy_history",
    "owned_elsewhere",
    "record_size",
    "verify_shard",
]

_log = logging.getLogger("membank.storage")
#: A write run by the writer thread, on the shard and the history database.
Op = Callable[[Any, SqliteHistory], None]


def condition(c: Cond) -> Any:
    if c.op == "eq":
        # The binding reads a Python bool as an integer (bool subclasses int), so
        # MatchValue(False) would match 0 and never false; numpy's bool_ stays a bool.
        value: Any = np.bool_(c.value) if isinstance(c.value, bool) else c.value
        return qe.FieldCondition(key=c.key, match=qe.MatchValue(value))
    if c.op == "any":
        strings = [v for v in c.value if isinstance(v, str)]
        numbers = [v for v in c.value if not isinstance(v, str)]
        if strings and numbers:
            # MatchAny takes values of one type; a mixed list is either of two.
            return qe.Filter(
                should=[
                    qe.FieldCondition(key=c.key, match=qe.MatchAny(strings)),
                    qe.FieldCondition(key=c.key, match=qe.MatchAny(numbers)),
                ]
            )
        return qe.FieldCondition(key=c.key, match=qe.MatchAny(c.value))
    if c.op == "set":
        return qe.Filter(must_not=[qe.IsEmptyCondition(c.key)])
    return qe.FieldCondition(key=c.key, range=qe.RangeFloat(gte=c.gte, lte=c.lte, gt=c.gt))


def edge_filter(conds: Sequence[Cond]) -> Any:
    return qe.Filter(must=[condition(c) for c in conds])


def apply_group(
    shard: Any, history: SqliteHistory, wal: WalSync, ops: list[Op]
) -> list[Exception | None]:
    """Apply a group of writes, then commit history and sync the shard's WAL once each:
    the group is durable when this returns (``_edge_wal``: the WAL is replayed over
    segments flushed later). Each write runs in a savepoint of the history transaction,
    undone if the write fails, so one failed write does not fail its group."""
    outcomes: list[Exception | None] = []
    history.begin()
    try:
        for op in ops:
            history.savepoint("op")
            try:
                op(shard, history)
                history.release("op")
                outcomes.append(None)
            except Exception as exc:  # noqa: BLE001 - one failed write must not fail its group
                history.undo("op")
                outcomes.append(exc)
        # History first: an event may outlive a crash its record did not (it is then
        # never shown, see SqliteHistory), never the other way round.
        history.commit()
    except BaseException:
        history.rollback()
        raise
    wal.sync()
    return outcomes


def disk_full(error: BaseException) -> bool:
    text = str(error).lower()
    return (
        (isinstance(error, OSError) and error.errno == 28)
        or "disk is full" in text
        or ("no space left" in text)
    )


def record_size(r: MemoryRecord) -> int:
    """Roughly what a record takes on disk: text, history, vector and payload overhead."""
    text = len(r.memory.content) + sum(len(h.content) for h in r.history)
    return 2 * text + 4 * len(r.vector) + 512


def owned_elsewhere(shard: Any, records: Sequence[MemoryRecord], claims: Collection[UUID]) -> None:
    """Raise Conflict when a claimed id belongs to another user. Run by the writer thread,
    which applies every write in turn, so nothing can take the id between this look and
    the write that follows it."""
    wanted = {r.memory.id: r.memory.user_id for r in records if r.memory.id in claims}
    if not wanted:
        return
    found = retrieve(
        shard, [str(i) for i in wanted], qe.PayloadSelector.Include(["user_id"]), False
    )
    taken = sorted(
        str(r.id)
        for r in found
        if r.payload and r.payload.get("user_id") != wanted[UUID(str(r.id))]
    )
    if taken:
        raise Conflict("this id belongs to another memory", {"field": "id", "ids": taken})


def move_legacy_history(shard: Any, history: SqliteHistory) -> int:
    """Points written by earlier versions carry their history in the payload: move it to
    the history database and write the points again in today's layout (with their
    size and check values); how many were moved."""
    moved = 0
    legacy = qe.Filter(must_not=[qe.IsEmptyCondition(HISTORY)])
    while True:
        try:
            points, _ = shard.scroll(
                qe.ScrollRequest(limit=500, filter=legacy, with_payload=True, with_vector=True)
            )
        except BaseException as exc:
            if not is_damage(exc):
                raise
            # Damaged payloads: the move waits for a repair (verify lists them).
            _log.error("history of earlier versions not moved: the payload storage is damaged")
            return moved
        if not points:
            return moved
        events: list[tuple[Memory, HistoryEvent]] = []
        rewritten = []
        for p in points:
            memory = memory_from_payload(p.id, p.payload)
            events.extend((memory, h) for h in legacy_history(p.payload) or ())
            vector = p.vector if isinstance(p.vector, list) else []
            record = record_from_payload(p.id, p.payload, vector)
            rewritten.append(qe.Point(id=p.id, vector=vector, payload=record_to_payload(record)))
        history.begin()
        history.add(events)
        history.commit()
        shard.update(qe.UpdateOperation.upsert_points(rewritten))
        shard.flush()
        moved += len(points)


def verify_shard(
    shard: Any,
    history: SqliteHistory,
    *,
    dimension: int,
    unit: bool,
    progress: Callable[[int], None] | None = None,
) -> IntegrityReport:
    """Check every point (payload, id, content, vector), every history row (its digest),
    and that each record's history holds the versions it should; list the damaged
    memories, and those whose history outlived their record."""
    report = IntegrityReport()
    versions: dict[str, int] = {}
    offset: Any = None
    while True:
        points, offset = scroll(
            shard, offset=offset, limit=500, with_payload=True, with_vector=True
        )
        for p in points:
            tally(report, versions, p.id, p.payload, p.vector, dimension=dimension, unit=unit)
        if progress is not None:
            progress(len(points))
        if offset is None:
            break
    counted = int(shard.count(qe.CountRequest(exact=True)))
    if counted != report.checked:
        report.store_problems.append(
            f"the shard counts {counted} points but {report.checked} could be read"
        )
    quick = history.integrity()
    if quick != "ok":
        report.store_problems.append(f"history database: {quick}")
    try:
        kept = history.memories()
    except IntegrityError as exc:
        report.store_problems.append(exc.message)
        return report
    report.damaged.extend(history_problems(kept, versions, history.limit))
    return report


def history_problems(
    kept: dict[str, tuple[str, set[int], bool]],
    versions: dict[str, int],
    limit: int | None,
) -> list[Damage]:
    """Damage history shows: a damaged row, a record's version missing from its
    history, history without a record. ``versions``: each record's version (-1 for a
    damaged record, already reported)."""
    found: list[Damage] = []
    for memory_id, (user_id, _, damaged_row) in kept.items():
        version = versions.get(memory_id)
        if version is None:
            found.append(Damage(memory_id, "record is missing; its history is kept", user_id))
        elif version >= 0 and damaged_row:
            found.append(Damage(memory_id, "a history event differs from the one written", user_id))
    for memory_id, version in versions.items():
        if version < 0:
            continue
        first = max(1, version - limit + 1) if limit is not None else 1
        user, have, _ = kept.get(memory_id, ("", set(), False))
        missing = set(range(first, version + 1)) - have
        if missing and not (memory_id in kept and kept[memory_id][2]):
            found.append(
                Damage(memory_id, f"history lacks version(s) {sorted(missing)[:5]}", user or None)
            )
    return found
