"""What the workers of each job kind do with the items they claim.

* ``embed_store``: the claimed items (of any jobs and users) are embedded in one call
  (through the batcher, outside any lock) and written as one batch through
  :meth:`MemoryService.remember_many`: one store write; batches of several workers
  ready at once are written together (:class:`MergedWrites`), so they wait for one
  another's users' locks once, not in turn. An item carries the memory id it will
  have, so writing it again (after a crash between the store's write and the queue's
  record of it) finds it stored and writes nothing. When the batch fails for one item (a client id
  another user owns, a quota), the items are written one by one, so only that one
  fails.
* ``extract``: a conversation through :class:`ExtractionService`; the item answers
  the decisions (event and memory id, never the text); a model that cannot answer or
  answers nonsense is tried again, up to ``max_attempts``.
* ``reindex``: a user's memories embedded again with the current embedder.
* ``delete_user``: a user's memories and history erased.

A failure that is not the item's (store or embedder down) sends it back without
costing an attempt; a permanent one (bad input, a conflict, a quota) sends it to the
dead-letter list at once; anything else is retried up to ``max_attempts``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Any
from uuid import UUID

import msgspec

from membank_server.domain.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    MembankError,
    ModelOutputInvalid,
    ModelUnavailable,
    NotFound,
    PreconditionFailed,
    Unavailable,
)
from membank_server.domain.jobs import Claimed, ItemOutcome, ItemState
from membank_server.domain.model import Memory
from membank_server.services._job_payloads import Conversation, UserWork, decode_memory
from membank_server.services.extraction import ExtractionService
from membank_server.services.inputs import NewMemory
from membank_server.services.memories import MemoryService
from membank_server.services.workers import later

__all__ = [
    "EmbedStoreHandler",
    "EraseUserHandler",
    "ExtractHandler",
    "MergedWrites",
    "ReindexHandler",
    "done",
    "failed",
]

_log = logging.getLogger("membank.jobs")
#: Errors that the same item would meet again: no point in retrying it.
PERMANENT = (InvalidInput, Conflict, NotFound, Forbidden, PreconditionFailed)
_user = msgspec.msgpack.Decoder(UserWork)
_conversation = msgspec.msgpack.Decoder(Conversation)
_PAGE = 256


def done(item: Claimed, memory_id: UUID | None = None, detail: Any = None) -> ItemOutcome:
    """A processed item: the memory it stored and/or what else it answers (as JSON)."""
    encoded = msgspec.json.encode(detail) if detail is not None else None
    return ItemOutcome(item.job_id, item.index, ItemState.DONE, memory_id=memory_id, detail=encoded)


def failed(item: Claimed, error: Exception) -> ItemOutcome:
    """The outcome of an item whose processing raised ``error`` (module docs)."""
    if isinstance(error, (ModelUnavailable, ModelOutputInvalid)):
        return later(item, error)  # a model refusing for good must not loop forever
    if isinstance(error, Unavailable):
        return later(item, error, counts=False)
    if isinstance(error, PERMANENT):
        return ItemOutcome(
            item.job_id, item.index, ItemState.DEAD, error_code=error.code, error=error.message
        )
    if isinstance(error, msgspec.DecodeError):
        return ItemOutcome(
            item.job_id, item.index, ItemState.DEAD, error_code="invalid_payload",
            error="the queued item cannot be read",
        )  # fmt: skip
    if not isinstance(error, MembankError):
        _log.error("job item %s/%d failed unexpectedly", item.job_id, item.index, exc_info=error)
    return later(item, error)


_Waiting = tuple[list[NewMemory], "asyncio.Future[list[tuple[Memory, bool]]]"]


class MergedWrites:
    """Batches that are ready while a write is under way go as one write after it.

    A worker's batch holds many users, so two workers' batches almost always share a
    user's lock and would be written in turn, each paying the store's flush; merged,
    they pay one. A merged write that fails fails every batch in it (each caller then
    finds its own bad item); at most ``limit`` items go at once.
    """

    def __init__(self, memories: MemoryService, limit: int) -> None:
        self.memories, self.limit = memories, limit
        self._waiting: list[_Waiting] = []
        self._lock = asyncio.Lock()

    async def write(self, items: list[NewMemory]) -> list[tuple[Memory, bool]]:
        future: asyncio.Future[list[tuple[Memory, bool]]] = (
            asyncio.get_running_loop().create_future()
        )
        self._waiting.append((items, future))
        async with self._lock:
            if not future.done():
                await self._write_group()
        return await future

    async def _write_group(self) -> None:
        group: list[_Waiting] = []
        size = 0
        while self._waiting and (not group or size + len(self._waiting[0][0]) <= self.limit):
            group.append(self._waiting.pop(0))
            size += len(group[-1][0])
        try:
            results = await self.memories.remember_many([m for items, _ in group for m in items])
        except Exception as exc:  # noqa: BLE001 - every batch of the group gets it
            for _, future in group:
                future.set_exception(exc)
            return
        start = 0
        for items, future in group:
            future.set_result(results[start : start + len(items)])
            start += len(items)


class EmbedStoreHandler:
    """``embed_store`` items: asynchronous writes (module docs)."""

    def __init__(self, memories: MemoryService) -> None:
        self.memories = memories
        self.writes = MergedWrites(memories, memories.limits.batch_max_items)

    async def handle(self, items: list[Claimed]) -> list[ItemOutcome]:
        outcomes: list[ItemOutcome] = []
        batch: list[tuple[Claimed, NewMemory]] = []
        for item in items:
            try:
                memory, key = decode_memory(item.payload)
            except msgspec.DecodeError as exc:
                outcomes.append(failed(item, exc))
                continue
            if key is None:
                batch.append((item, memory))
            else:  # written as the synchronous request would be: replay or 409
                outcomes.append(await self._one(item, memory, key))
        if not batch:
            return outcomes
        try:
            batch = await self._embedded(batch)
            results = await self.writes.write([m for _, m in batch])
        except Unavailable as exc:
            return outcomes + [later(item, exc, counts=False) for item, _ in batch]
        except Exception:  # noqa: BLE001 - one item's fault, or a bug: found one by one
            return outcomes + [await self._one(item, m) for item, m in batch]
        return outcomes + [
            done(item, memory.id) for (item, _), (memory, _) in zip(batch, results, strict=True)
        ]

    async def _embedded(
        self, batch: list[tuple[Claimed, NewMemory]]
    ) -> list[tuple[Claimed, NewMemory]]:
        """The items with their vectors, embedded before any user's lock is taken: the
        next batch embeds while this one is written (an item found to be a duplicate
        was embedded for nothing, which is rare)."""
        texts = [m.content for _, m in batch if m.vector is None]
        if not texts:
            return batch
        vectors = iter(await self.memories.embedder.embed(texts))
        return [
            (c, m if m.vector is not None else replace(m, vector=next(vectors))) for c, m in batch
        ]

    async def _one(self, item: Claimed, memory: NewMemory, key: str | None = None) -> ItemOutcome:
        try:
            stored, _ = await self.memories.remember(memory, key)
        except Exception as exc:  # noqa: BLE001 - becomes the item's outcome
            return failed(item, exc)
        return done(item, stored.id)


class _OneByOne:
    """Items processed one at a time: each answers a JSON detail, or fails alone."""

    async def handle(self, items: list[Claimed]) -> list[ItemOutcome]:
        outcomes = []
        for item in items:
            try:
                detail = await self.one(item.payload)
            except Exception as exc:  # noqa: BLE001 - becomes the item's outcome
                outcomes.append(failed(item, exc))
                continue
            outcomes.append(done(item, detail=detail))
        return outcomes

    async def one(self, payload: bytes) -> dict[str, Any]:
        raise NotImplementedError


class ExtractHandler(_OneByOne):
    """``extract`` items: one conversation each."""

    def __init__(self, extraction: ExtractionService) -> None:
        self.extraction = extraction

    async def one(self, payload: bytes) -> dict[str, Any]:
        result = await self.extraction.extract(_conversation.decode(payload))
        decisions = [
            {"event": d.event, "memory_id": d.memory_id, "error": d.error_code}
            for d in result.decisions
        ]
        return {"facts": len(result.facts), "decisions": decisions, "tokens": result.tokens}


class EraseUserHandler(_OneByOne):
    """``delete_user`` items: erase a user's memories and history."""

    def __init__(self, memories: MemoryService) -> None:
        self.memories = memories

    async def one(self, payload: bytes) -> dict[str, Any]:
        return {"deleted": await self.memories.forget_user(_user.decode(payload).user_id)}


class ReindexHandler(_OneByOne):
    """``reindex`` items: a user's live memories embedded again (same versions, new
    vectors), a page at a time under the user's lock."""

    def __init__(self, memories: MemoryService) -> None:
        self.memories = memories

    async def one(self, payload: bytes) -> dict[str, Any]:
        return {"reindexed": await self._reindex(_user.decode(payload).user_id)}

    async def _reindex(self, user_id: str) -> int:
        m, count, cursor = self.memories, 0, None
        while True:
            page = await m.list_page(user_id, limit=_PAGE, cursor=cursor)
            async with m.locks.hold([user_id]):
                records = await m.store.get(user_id, [x.id for x in page.items])
                live = [r for r in records.values() if r.deleted_at is None]
                if live:
                    vectors = await m.embedder.embed([r.memory.content for r in live])
                    await m.store.upsert(
                        [
                            replace(r, vector=v, history=())
                            for r, v in zip(live, vectors, strict=True)
                        ]
                    )
                    count += len(live)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        if m.recall_cache is not None:
            await m.recall_cache.invalidate([user_id])
        return count
