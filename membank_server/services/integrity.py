"""Verify a store's records, and mend the damaged ones from what the store still holds.

``verify`` is the store's own check (``MemoryStore.verify``). ``repair`` works through
its report, one damaged memory at a time:

* its history survives (the usual case: history is kept apart from the record): the
  record is rebuilt from the newest event (content, metadata, version, times; a
  DELETE event makes it a tombstone) and its vector embedded again from that content.
  What history does not hold is lost: the agent, session and expiry of the memory;
* nothing survives: the record is removed, and the memory is reported lost, to be
  restored from a backup;
* a problem of the store as a whole (a history database that fails its own check)
  is reported, never mended here: restore that store from a backup.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from uuid import UUID

from membank_server.domain.integrity import Damage, IntegrityReport
from membank_server.domain.model import Event, HistoryEvent, Memory, MemoryRecord, content_hash
from membank_server.domain.ports import Embedder, MemoryStore
from membank_server.services.inputs import NOTE_KEY

__all__ = ["IntegrityService", "RepairReport"]

_log = logging.getLogger("membank.integrity")


@dataclass
class RepairReport:
    rebuilt: list[str] = field(default_factory=list)
    lost: list[Damage] = field(default_factory=list)
    store_problems: list[str] = field(default_factory=list)


class IntegrityService:
    """Checks and mends one store (module docs).

    Args:
        store: The store to check.
        embedder: Embeds a rebuilt record's content again (started by the caller).
        hold: Per-user locks (``MemoryService.locks.hold``), so a repair on a running
            server never races a user's write.
    """

    def __init__(
        self,
        store: MemoryStore,
        embedder: Embedder,
        hold: Callable[[Iterable[str]], AbstractAsyncContextManager[None]] | None = None,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self._hold = hold

    async def verify(self, progress: Callable[[int], None] | None = None) -> IntegrityReport:
        return await self.store.verify(progress)

    async def repair(
        self, report: IntegrityReport, progress: Callable[[int], None] | None = None
    ) -> RepairReport:
        mended = RepairReport(store_problems=list(report.store_problems))
        for damage in report.damaged:
            users = [damage.user_id] if damage.user_id else []
            async with self._hold(users) if self._hold else contextlib.nullcontext():
                record = await self._rebuild(damage)
                if record is None:
                    memory_id = _uuid(damage.memory_id)
                    if memory_id is not None:
                        await self.store.discard([memory_id])
                    mended.lost.append(damage)
                    _log.error(
                        "memory %s could not be rebuilt: restore it from a backup",
                        damage.memory_id,
                    )
                else:
                    await self.store.upsert([record])
                    mended.rebuilt.append(damage.memory_id)
            if progress is not None:
                progress(1)
        return mended

    async def _rebuild(self, damage: Damage) -> MemoryRecord | None:
        memory_id = _uuid(damage.memory_id)
        if damage.user_id is None or memory_id is None:
            return None
        events = await self.store.history(damage.user_id, memory_id, all_versions=True)
        if not events:
            return None
        last = events[-1]
        content = _content_of(events)
        if content is None:
            return None
        memory = Memory(
            id=memory_id,
            user_id=damage.user_id,
            content=content.content,
            # An extraction's note belongs to the event, not to the memory.
            metadata={k: v for k, v in content.metadata.items() if k != NOTE_KEY},
            created_at=events[0].at,
            updated_at=last.at,
            version=last.version,
            content_hash=content_hash(content.content),
        )
        (vector,) = await self.embedder.embed([memory.content])
        deleted = last.at if last.event is Event.DELETE else None
        return MemoryRecord(memory, vector, (), deleted_at=deleted)


def _uuid(text: str) -> UUID | None:
    """A damaged id may not even be a UUID any more (a flipped bit in its text)."""
    try:
        return UUID(text)
    except ValueError:
        return None


def _content_of(events: tuple[HistoryEvent, ...]) -> HistoryEvent | None:
    """The event holding the memory's last content (a DELETE event repeats it)."""
    for event in reversed(events):
        if event.content:
            return event
    return None
