"""MemoryService: remember, recall, update, forget — the use cases over the ports."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from membank_server.domain.errors import (
    CacheUnavailable,
    Conflict,
    InvalidInput,
    NotFound,
    PreconditionFailed,
)
from membank_server.domain.model import (
    Event,
    HistoryEvent,
    Memory,
    MemoryRecord,
    Page,
    SearchHit,
    VectorQuery,
    content_hash,
    stored_bytes,
)
from membank_server.domain.ports import Embedder, MemoryStore
from membank_server.domain.telemetry import NullTelemetry, Telemetry
from membank_server.services._writes import (
    MemoryIds,
    UserLocks,
    WritePlan,
    build_record,
    same,
)
from membank_server.services.idempotency import IdempotencyIds
from membank_server.services.inputs import (
    Limits,
    MemoryPatch,
    NewMemory,
    RecallQuery,
    check_expiry,
    check_vector,
    request_digest,
)
from membank_server.services.quotas import Quotas, UsageMeter
from membank_server.services.recall_cache import RecallCache

__all__ = ["MemoryService", "UserLocks"]

_log = logging.getLogger("membank.memories")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class MemoryService:
    """The memory use cases; every method is scoped to one user's memories.

    Args:
        store: Where records live.
        embedder: Turns content and queries into vectors.
        limits: Size limits from settings.
        telemetry: Where timings and counts go.
        clock: The current time (tests pass a fixed one).
        recall_cache: Caches searches and query embeddings; None for no cache.
        quotas: Per-user limits on live memories and bytes.
        idempotency: Derives the ids Idempotency-Keys stand for.
    """

    def __init__(
        self,
        store: MemoryStore,
        embedder: Embedder,
        limits: Limits | None = None,
        telemetry: Telemetry | None = None,
        clock: Callable[[], datetime] = _utcnow,
        recall_cache: RecallCache | None = None,
        quotas: Quotas | None = None,
        idempotency: IdempotencyIds | None = None,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.limits = limits or Limits()
        self.telemetry = telemetry or NullTelemetry()
        self._clock = clock
        self.locks = UserLocks()
        self._idempotency = idempotency or IdempotencyIds()
        self.recall_cache = recall_cache
        self.usage = UsageMeter(store, quotas or Quotas(None, None))
        self._ids = MemoryIds()

    # -- writes ------------------------------------------------------------

    async def remember(
        self, item: NewMemory, idempotency_key: str | None = None
    ) -> tuple[Memory, bool]:
        """Store one memory; returns it and whether it was created.

        With ``idempotency_key`` the memory id derives from (user, key), unless the
        request names its own ``id``: a replay of the same request returns the same
        memory; the same key with another body is a ``Conflict``. An exact duplicate
        of a live memory of the user returns that memory, not created.
        """
        digest = None
        if idempotency_key is not None:
            digest = request_digest(item)
            if item.id is None:
                item = replace(item, id=self._idempotency.id_for(item.user_id, idempotency_key))
        (result,) = await self._write([item], digest, batch=False)
        return result

    async def remember_many(self, items: Sequence[NewMemory]) -> list[tuple[Memory, bool]]:
        """Store up to ``limits.batch_max_items`` memories, all or nothing on validation."""
        if not items:
            raise InvalidInput("a batch needs at least one memory", {"field": "memories"})
        if len(items) > self.limits.batch_max_items:
            raise InvalidInput(
                f"a batch holds at most {self.limits.batch_max_items} memories, got {len(items)}",
                {"field": "memories", "limit": self.limits.batch_max_items},
            )
        return await self._write(items, None, batch=True)

    def validate(self, items: Sequence[NewMemory]) -> None:
        """What a batch write checks before it takes a lock (a job is checked so, whole)."""
        self._validate(items, self._clock(), batch=True)

    def _validate(self, items: Sequence[NewMemory], now: datetime, batch: bool) -> None:
        for i, item in enumerate(items):
            where = {"index": i} if batch else {}
            self.limits.check_content(item.content, where)
            self.limits.check_metadata(item.metadata, where)
            check_expiry(item.expires_at, now, where)
            if item.vector is not None:
                check_vector(item.vector, self.embedder.dimension, where)
        ids = [item.id for item in items if item.id is not None]
        if len(ids) != len(set(ids)):
            raise InvalidInput("a batch names the same id twice", {"field": "id"})

    async def _write(
        self, items: Sequence[NewMemory], digest: str | None, batch: bool
    ) -> list[tuple[Memory, bool]]:
        now = self._clock()
        self._validate(items, now, batch)
        async with self.locks.hold(item.user_id for item in items):
            explicit = [item.id for item in items if item.id is not None]
            owners = await self.store.owners(explicit)
            for i, item in enumerate(items):
                owner = owners.get(item.id) if item.id else None
                if owner is not None and owner != item.user_id:
                    raise Conflict(
                        "this id belongs to another memory",
                        {"field": "id", **({"index": i} if batch else {})},
                    )
            existing: dict[UUID, MemoryRecord] = {}
            for user_id in {item.user_id for item in items if item.id in owners}:
                ids = [i.id for i in items if i.user_id == user_id and i.id in owners]
                existing.update(await self.store.get(user_id, [i for i in ids if i]))
            fresh = [
                (item.user_id, content_hash(item.content))
                for item in items
                if item.id not in existing
            ]
            duplicates = await self.store.find_by_hash(fresh, now)
            plan = WritePlan.of(items, existing, duplicates, digest)
            await self._apply(plan, now)
            return [step.result() for step in plan.steps]

    async def _apply(self, plan: WritePlan, now: datetime) -> None:
        """Embed, build, check quotas, then write the plan's records in one upsert."""
        writing = plan.writing
        if not writing:
            return
        to_embed = [step for step in writing if step.needs_embedding]
        vectors = await self._embed([step.item.content for step in to_embed])
        embedded = {id(step): vector for step, vector in zip(to_embed, vectors, strict=True)}
        for step in writing:
            old = step.old
            vector = embedded.get(id(step)) or step.item.vector or (old.vector if old else [])
            memory_id = step.item.id or self._ids()
            step.record = build_record(step.item, old, vector, plan.request_digest, now, memory_id)
        growth = plan.growth()
        for user_id, (memories, size) in growth.items():
            await self.usage.check(user_id, memories, size)
        await self.store.upsert([s.record for s in writing if s.record], claims=plan.claims)
        for user_id, (memories, size) in growth.items():
            self.usage.record(user_id, memories, size)
        await self._invalidate(growth)

    async def update(
        self, user_id: str, memory_id: UUID, patch: MemoryPatch, if_match: int | None = None
    ) -> Memory:
        """Change content, metadata or expiry; re-embeds when the content changes.

        Raises:
            NotFound: no live memory with this id for this user.
            PreconditionFailed: ``if_match`` is not the current version.
        """
        now = self._clock()
        if patch.content is not None:
            self.limits.check_content(patch.content, {})
        if patch.metadata is not None:
            self.limits.check_metadata(patch.metadata, {})
        check_expiry(patch.expires_at, now, {})
        if patch.vector is not None:
            check_vector(patch.vector, self.embedder.dimension, {})
        async with self.locks.hold([user_id]):
            old = await self._live_record(user_id, memory_id, now)
            if if_match is not None and if_match != old.memory.version:
                raise PreconditionFailed(
                    f"memory is at version {old.memory.version}, not {if_match}",
                    {"current_version": old.memory.version},
                )
            m = old.memory
            item = NewMemory(
                user_id=user_id,
                content=m.content if patch.content is None else patch.content,
                metadata=m.metadata if patch.metadata is None else patch.metadata,
                agent_id=m.agent_id,
                session_id=m.session_id,
                expires_at=m.expires_at if patch.expires_at is None else patch.expires_at,
                id=m.id,
                vector=patch.vector,
                note=patch.note,
            )
            if same(m, item, content_hash(item.content)) and patch.vector is None:
                return m
            vector = patch.vector or (
                old.vector
                if content_hash(item.content) == m.content_hash
                else (await self._embed([item.content]))[0]
            )
            record = build_record(item, old, vector, old.idempotency, now, m.id)
            growth = stored_bytes(record.memory) - stored_bytes(m)
            await self.usage.check(user_id, 0, growth)
            await self.store.upsert([record])
            self.usage.record(user_id, 0, growth)
            await self._invalidate([user_id])
            return record.memory

    async def forget(
        self, user_id: str, memory_id: UUID, note: Mapping[str, Any] | None = None
    ) -> None:
        """Delete one memory; its history stays readable until the user is erased.
        ``note``: what the DELETE event's metadata adds (see ``NewMemory.note``)."""
        now = self._clock()
        async with self.locks.hold([user_id]):
            old = await self._live_record(user_id, memory_id, now)
            m = replace(old.memory, version=old.memory.version + 1, updated_at=now)
            meta = {**m.metadata, **note} if note else m.metadata
            event = HistoryEvent(Event.DELETE, m.version, m.content, meta, now)
            await self.store.upsert([replace(old, memory=m, history=(event,), deleted_at=now)])
            self.usage.record(user_id, -1, -stored_bytes(old.memory))
            await self._invalidate([user_id])

    async def forget_user(self, user_id: str) -> int:
        """Erase every memory of a user and its history; returns how many were live.

        The user's cached searches and query embeddings go too (search texts are as
        personal as memories), not only out of reach by the generation bump.
        """
        async with self.locks.hold([user_id]):
            erased = await self.store.delete_user(user_id)
            self.usage.forget(user_id)
            if self.recall_cache is not None:
                try:
                    await self.recall_cache.flush(user_id)
                except CacheUnavailable as exc:
                    # The memories are gone; cached entries are out of reach (the
                    # generation moved, or the epoch will) and expire with their TTL.
                    _log.warning("cache entries of an erased user not removed: %s", exc.message)
            return erased

    async def purge_expired(self) -> int:
        return await self.store.purge_expired(self._clock())

    # -- reads -------------------------------------------------------------

    async def get(self, user_id: str, memory_id: UUID) -> Memory:
        return (await self._live_record(user_id, memory_id, self._clock())).memory

    async def history(self, user_id: str, memory_id: UUID) -> tuple[HistoryEvent, ...]:
        """Every kept version, oldest first (deleted memories too, until erased)."""
        events = await self.store.history(user_id, memory_id)
        if not events:
            raise NotFound("no memory with this id for this user")
        return events

    async def list_page(
        self,
        user_id: str,
        *,
        limit: int = 100,
        cursor: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
    ) -> Page:
        if limit < 1:
            raise InvalidInput("limit must be at least 1", {"field": "limit"})
        # Above the server's page size, a page is that size (next_cursor goes on).
        limit = min(limit, self.limits.list_max_limit)
        if cursor is not None:
            try:
                UUID(cursor)
            except ValueError as exc:
                raise InvalidInput(
                    "cursor is not one this server gave out", {"field": "cursor"}
                ) from exc
        return await self.store.list_page(
            user_id,
            now=self._clock(),
            limit=limit,
            cursor=cursor,
            agent_id=agent_id,
            session_id=session_id,
        )

    async def search(self, q: RecallQuery) -> list[SearchHit]:
        """The user's live memories nearest to a text or a vector, best first."""
        hits, _ = await self.recall(q)
        return hits

    async def recall(self, q: RecallQuery) -> tuple[list[SearchHit], str]:
        """Like :meth:`search`, and says where the answer came from: ``hit``, ``miss``
        (computed, then cached), ``bypass`` (cache counters down) or ``off`` (no cache)."""
        if (q.query is None) == (q.vector is None):
            raise InvalidInput("give exactly one of query or vector", {"field": "query"})
        if q.limit < 1:
            raise InvalidInput("limit must be at least 1", {"field": "limit"})
        if q.limit > self.limits.search_max_limit:
            # A larger limit asks for "as many as you give": the server's maximum.
            q = replace(q, limit=self.limits.search_max_limit)
        if q.vector is not None:
            check_vector(q.vector, self.embedder.dimension, {})
        else:
            assert q.query is not None
            self.limits.check_content(q.query, {}, "query")
        if any(c.any_of == () for c in q.filters.metadata):
            return [], "off"  # an empty "in" matches nothing: no need to ask the store
        if self.recall_cache is None:
            return await self._search(q), "off"
        hits, outcome = await self.recall_cache.search(
            q, self.embedder.model, lambda: self._search(q)
        )
        if outcome == "hit":
            # A cached answer may hold a memory that has expired since (if none has,
            # the hits stay as the cache gave them: ``CachedHits``, reusable encodings).
            now = self._clock()
            if any(h.memory.is_expired(now) for h in hits):
                hits = [h for h in hits if not h.memory.is_expired(now)]
        return hits, outcome

    async def _search(self, q: RecallQuery) -> list[SearchHit]:
        vector = (
            q.vector if q.vector is not None else await self._query_vector(q.user_id, q.query or "")
        )
        started = time.perf_counter()
        hits = await self.store.search(
            VectorQuery(q.user_id, vector, q.limit, self._clock(), q.min_score, q.filters)
        )
        self.telemetry.search(time.perf_counter() - started, len(hits))
        return hits

    async def _query_vector(self, user_id: str, text: str) -> list[float]:
        async def compute() -> list[float]:
            return (await self._embed([text]))[0]

        if self.recall_cache is None:
            return await compute()
        return await self.recall_cache.embedding(user_id, self.embedder.model, text, compute)

    async def _invalidate(self, user_ids: Iterable[str]) -> None:
        if self.recall_cache is not None:
            await self.recall_cache.invalidate(user_ids)

    async def count(self, user_id: str | None = None) -> int:
        n = await self.store.count(user_id)
        if user_id is None:
            self.telemetry.memories(n)
        return n

    # -- helpers -----------------------------------------------------------

    async def _embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        started = time.perf_counter()
        vectors = await self.embedder.embed(texts)
        self.telemetry.embedding(time.perf_counter() - started, len(texts))
        return vectors

    async def _live_record(self, user_id: str, memory_id: UUID, now: datetime) -> MemoryRecord:
        found = (await self.store.get(user_id, [memory_id])).get(memory_id)
        if found is None or found.deleted_at is not None or found.memory.is_expired(now):
            raise NotFound("no memory with this id for this user")
        return found
