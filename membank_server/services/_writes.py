"""The pieces of a write: ids, per-user locks, and the plan that decides each item's fate.

A create request (one memory or a batch) becomes a :class:`WritePlan`: for each item,
whether it is written, or answered with a memory that exists already (a replay of
an ``Idempotency-Key``, an unchanged upsert, an exact duplicate of a live memory, or
an earlier item of the same batch), and what the written ones add to their users'
usage.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from membank_server.domain.errors import Conflict
from membank_server.domain.model import (
    Event,
    HistoryEvent,
    Memory,
    MemoryRecord,
    content_hash,
    stored_bytes,
)
from membank_server.services.inputs import NewMemory

__all__ = ["MemoryIds", "Step", "UserLocks", "WritePlan", "build_record", "same"]

_STRIPES = 128


class MemoryIds:
    """UUIDv7 ids, strictly increasing within the process.

    Time-ordered ids make listing in id order list in creation order; within one
    millisecond the random tail is incremented so the order still holds.
    """

    def __init__(self) -> None:
        self._last = 0

    def __call__(self) -> UUID:
        ms = time.time_ns() // 1_000_000
        value = (ms & ((1 << 48) - 1)) << 80 | (uuid.uuid4().int & ((1 << 80) - 1))
        value = max(value, self._last + 1)
        self._last = value
        # version 7 in bits 76-79, RFC 4122 variant in bits 62-63
        value = (value & ~(0xF << 76)) | (0x7 << 76)
        return UUID(int=(value & ~(0x3 << 62)) | (0x2 << 62))


class UserLocks:
    """Striped per-user locks: read-modify-write of one user's memories is serial."""

    def __init__(self) -> None:
        self._locks = [asyncio.Lock() for _ in range(_STRIPES)]

    @contextlib.asynccontextmanager
    async def hold(self, user_ids: Iterable[str]) -> AsyncIterator[None]:
        stripes = sorted({zlib.crc32(u.encode()) % _STRIPES for u in user_ids})
        async with contextlib.AsyncExitStack() as stack:
            for i in stripes:
                await stack.enter_async_context(self._locks[i])
            yield


def same(m: Memory, item: NewMemory, digest: str) -> bool:
    """Whether writing ``item`` over ``m`` would change nothing a client can see."""
    return (
        m.content_hash == digest
        and m.content == item.content
        and dict(m.metadata) == dict(item.metadata)
        and m.agent_id == item.agent_id
        and m.session_id == item.session_id
        and m.expires_at == item.expires_at
    )


def build_record(
    item: NewMemory,
    old: MemoryRecord | None,
    vector: list[float],
    idempotency: str | None,
    now: datetime,
    memory_id: UUID,
) -> MemoryRecord:
    """The record that writing ``item`` over ``old`` (or afresh) makes, with the one
    history event it adds."""
    live = old is not None and old.deleted_at is None
    version = old.memory.version + 1 if old is not None else 1
    memory = Memory(
        id=memory_id,
        user_id=item.user_id,
        content=item.content,
        metadata=dict(item.metadata),
        created_at=old.memory.created_at if live and old else now,
        updated_at=now,
        version=version,
        content_hash=content_hash(item.content),
        agent_id=item.agent_id,
        session_id=item.session_id,
        expires_at=item.expires_at,
    )
    meta = {**memory.metadata, **item.note} if item.note else memory.metadata
    event = HistoryEvent(Event.UPDATE if live else Event.ADD, version, item.content, meta, now)
    return MemoryRecord(memory, vector, (event,), None, idempotency)


@dataclass
class Step:
    """One item of a create request and what becomes of it."""

    item: NewMemory
    digest: str
    old: MemoryRecord | None
    #: The answer when nothing is written: the memory, and whether it counts as created.
    answer: tuple[Memory, bool] | None = None
    #: The earlier step of the same batch this one duplicates.
    same_as: Step | None = None
    record: MemoryRecord | None = None

    @property
    def writes(self) -> bool:
        return self.answer is None and self.same_as is None

    @property
    def needs_embedding(self) -> bool:
        unchanged = self.old is not None and self.old.memory.content_hash == self.digest
        return self.item.vector is None and not unchanged

    def result(self) -> tuple[Memory, bool]:
        if self.same_as is not None:
            return self.same_as.result()[0], False
        if self.answer is not None:
            return self.answer
        assert self.record is not None
        old = self.old
        return self.record.memory, old is None or old.deleted_at is not None


@dataclass
class WritePlan:
    """What a create request writes and answers (module docs)."""

    steps: list[Step]
    request_digest: str | None = None
    claims: set[UUID] = field(default_factory=set)

    @classmethod
    def of(
        cls,
        items: Sequence[NewMemory],
        existing: dict[UUID, MemoryRecord],
        duplicates: dict[tuple[str, str], Memory],
        request_digest: str | None,
    ) -> WritePlan:
        """Decide each item. ``existing``: the records of the items' ids that belong to
        their users; ``duplicates``: live memories by (user, content hash).

        Raises:
            Conflict: an ``Idempotency-Key`` reused with another request, or for a
                memory deleted since.
        """
        plan = cls([], request_digest)
        first: dict[tuple[str, str], Step] = {}
        for item in items:
            step = Step(
                item, content_hash(item.content), existing.get(item.id) if item.id else None
            )
            plan.steps.append(step)
            old = step.old
            if old is not None and old.deleted_at is None:
                if request_digest is not None:
                    if old.idempotency != request_digest:
                        raise Conflict("this Idempotency-Key was used with a different request")
                    step.answer = (old.memory, True)
                elif same(old.memory, item, step.digest):
                    step.answer = (old.memory, False)
                continue
            if old is not None and request_digest is not None:
                raise Conflict("the memory created with this Idempotency-Key was deleted")
            key = (item.user_id, step.digest)
            if key in duplicates:
                step.answer = (duplicates[key], False)
            elif key in first:
                step.same_as = first[key]
            else:
                first[key] = step
                if item.id is not None and old is None:
                    # A new id of the client's choosing: taken atomically by the store.
                    plan.claims.add(item.id)
        return plan

    @property
    def writing(self) -> list[Step]:
        return [s for s in self.steps if s.writes]

    def growth(self) -> dict[str, tuple[int, int]]:
        """Per user: live memories and bytes the built records add (for quotas)."""
        grows: dict[str, tuple[int, int]] = {}
        for step in self.writing:
            assert step.record is not None
            m, old = step.record.memory, step.old
            was_live = old is not None and old.deleted_at is None
            n, size = grows.get(m.user_id, (0, 0))
            before = stored_bytes(old.memory) if was_live and old else 0
            grows[m.user_id] = (n + (not was_live), size + stored_bytes(m) - before)
        return grows
