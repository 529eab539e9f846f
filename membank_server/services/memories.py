"""MemoryService: remember, recall, update, forget — the use cases over the ports."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from uuid import UUID

from membank_server.domain.errors import Conflict, InvalidInput, NotFound, PreconditionFailed
from membank_server.domain.model import (
    Event,
    HistoryEvent,
    Memory,
    MemoryRecord,
    Page,
    SearchHit,
    VectorQuery,
    content_hash,
)
from membank_server.domain.ports import Embedder, MemoryStore
from membank_server.domain.telemetry import NullTelemetry, Telemetry
from membank_server.services.inputs import (
    Limits,
    MemoryPatch,
    NewMemory,
    RecallQuery,
    check_expiry,
    check_vector,
    request_digest,
)
from membank_server.services.recall_cache import RecallCache

__all__ = ["MemoryService", "UserLocks"]

_IDEMPOTENCY_NS = UUID("6f1c9a52-3a77-4c55-9d3e-2b0c7a9e8d41")
_STRIPES = 128


def _utcnow() -> datetime:
    return datetime.now(UTC)


class _MemoryIds:
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


class MemoryService:
    """The memory use cases; every method is scoped to one user's memories.

    Args:
        store: Where records live.
        embedder: Turns content and queries into vectors.
        limits: Size limits from settings.
        telemetry: Where timings and counts go.
        clock: The current time (tests pass a fixed one).
    """

    def __init__(
        self,
        store: MemoryStore,
        embedder: Embedder,
        limits: Limits | None = None,
        telemetry: Telemetry | None = None,
        clock: Callable[[], datetime] = _utcnow,
        recall_cache: RecallCache | None = None,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.limits = limits or Limits()
        self.telemetry = telemetry or NullTelemetry()
        self._clock = clock
        self.locks = UserLocks()
        #: Keys the ids that Idempotency-Keys stand for (set at start with auth on).
        self.idempotency_secret: bytes | None = None
        self.recall_cache = recall_cache
        self._ids = _MemoryIds()

    # -- writes ------------------------------------------------------------

    def _idempotent_id(self, user_id: str, key: str) -> UUID:
        """The memory id an Idempotency-Key stands for. Under the server's secret it
        cannot be computed by another user (who could otherwise take the id first)."""
        name = f"{user_id}\n{key}"
        if self.idempotency_secret is None:
            return uuid.uuid5(_IDEMPOTENCY_NS, name)
        digest = hmac.new(self.idempotency_secret, name.encode(), hashlib.sha256).digest()
        return UUID(bytes=digest[:16], version=5)

    async def remember(
        self, item: NewMemory, idempotency_key: str | None = None
    ) -> tuple[Memory, bool]:
        """Store one memory; returns it and whether it was created.

        With ``idempotency_key`` the memory id derives from (user, key): a replay of
        the same request returns the same memory; the same key with another body is
        a ``Conflict``. An exact duplicate of a live memory of the user returns that
        memory, not created.
        """
        digest = None
        if idempotency_key is not None:
            if item.id is not None:
                raise InvalidInput("give either an id or an Idempotency-Key, not both")
            digest = request_digest(item)
            item = replace(item, id=self._idempotent_id(item.user_id, idempotency_key))
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
            return await self._apply(items, existing, duplicates, digest, now)

    async def _apply(
        self,
        items: Sequence[NewMemory],
        existing: dict[UUID, MemoryRecord],
        duplicates: dict[tuple[str, str], Memory],
        digest: str | None,
        now: datetime,
    ) -> list[tuple[Memory, bool]]:
        results: list[tuple[Memory, bool] | None] = [None] * len(items)
        plans: list[tuple[int, NewMemory, MemoryRecord | None]] = []
        seen: dict[tuple[str, str], int] = {}
        for i, item in enumerate(items):
            digest_of = content_hash(item.content)
            old = existing.get(item.id) if item.id else None
            if old is not None and old.deleted_at is None:
                if digest is not None:
                    if old.idempotency != digest:
                        raise Conflict("this Idempotency-Key was used with a different request")
                    results[i] = (old.memory, True)
                elif _same(old.memory, item, digest_of):
                    results[i] = (old.memory, False)
                else:
                    plans.append((i, item, old))
                continue
            if old is not None and digest is not None:
                raise Conflict("the memory created with this Idempotency-Key was deleted")
            key = (item.user_id, digest_of)
            if key in duplicates:
                results[i] = (duplicates[key], False)
            elif key in seen:
                results[i] = None  # filled from its first occurrence below
            else:
                seen[key] = i
                plans.append((i, item, old))
        to_embed = [
            (i, item.content)
            for i, item, old in plans
            if item.vector is None
            and not (old is not None and old.memory.content_hash == content_hash(item.content))
        ]
        vectors = dict(
            zip((i for i, _ in to_embed), await self._embed([t for _, t in to_embed]), strict=True)
        )
        records = [
            _build(
                item,
                old,
                vectors.get(i) or item.vector or (old.vector if old else []),
                digest,
                now,
                item.id or self._ids(),
            )
            for i, item, old in plans
        ]
        await self.store.upsert(records)
        await self._invalidate(r.memory.user_id for r in records)
        for (i, _, old), record in zip(plans, records, strict=True):
            results[i] = (record.memory, old is None or old.deleted_at is not None)
        for i, item in enumerate(items):
            if results[i] is None:
                first = results[seen[(item.user_id, content_hash(item.content))]]
                assert first is not None
                results[i] = (first[0], False)
        return [r for r in results if r is not None]

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
            )
            if _same(m, item, content_hash(item.content)) and patch.vector is None:
                return m
            vector = patch.vector or (
                old.vector
                if content_hash(item.content) == m.content_hash
                else (await self._embed([item.content]))[0]
            )
            record = _build(item, old, vector, old.idempotency, now, m.id)
            await self.store.upsert([record])
            await self._invalidate([user_id])
            return record.memory

    async def forget(self, user_id: str, memory_id: UUID) -> None:
        """Delete one memory; its history stays readable until the user is erased."""
        now = self._clock()
        async with self.locks.hold([user_id]):
            old = await self._live_record(user_id, memory_id, now)
            m = replace(old.memory, version=old.memory.version + 1, updated_at=now)
            event = HistoryEvent(Event.DELETE, m.version, m.content, m.metadata, now)
            await self.store.upsert(
                [replace(old, memory=m, history=(*old.history, event), deleted_at=now)]
            )
            await self._invalidate([user_id])

    async def forget_user(self, user_id: str) -> int:
        """Erase every memory of a user and its history; returns how many were live."""
        async with self.locks.hold([user_id]):
            erased = await self.store.delete_user(user_id)
            await self._invalidate([user_id])
            return erased

    async def purge_expired(self) -> int:
        return await self.store.purge_expired(self._clock())

    # -- reads -------------------------------------------------------------

    async def get(self, user_id: str, memory_id: UUID) -> Memory:
        return (await self._live_record(user_id, memory_id, self._clock())).memory

    async def history(self, user_id: str, memory_id: UUID) -> tuple[HistoryEvent, ...]:
        found = (await self.store.get(user_id, [memory_id])).get(memory_id)
        if found is None:
            raise NotFound("no memory with this id for this user")
        return found.history

    async def list_page(
        self,
        user_id: str,
        *,
        limit: int = 100,
        cursor: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
    ) -> Page:
        if not 1 <= limit <= self.limits.list_max_limit:
            raise InvalidInput(
                f"limit must be between 1 and {self.limits.list_max_limit}", {"field": "limit"}
            )
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
        if not 1 <= q.limit <= self.limits.search_max_limit:
            raise InvalidInput(
                f"limit must be between 1 and {self.limits.search_max_limit}", {"field": "limit"}
            )
        if q.vector is not None:
            check_vector(q.vector, self.embedder.dimension, {})
        else:
            assert q.query is not None
            if not q.query.strip():
                raise InvalidInput("query must not be blank", {"field": "query"})
            self.limits.check_content(q.query, {"field": "query"})
        if self.recall_cache is None:
            return await self._search(q), "off"
        hits, outcome = await self.recall_cache.search(
            q, self.embedder.model, lambda: self._search(q)
        )
        if outcome == "hit":
            # A cached answer may hold a memory that has expired since.
            now = self._clock()
            hits = [h for h in hits if not h.memory.is_expired(now)]
        return hits, outcome

    async def _search(self, q: RecallQuery) -> list[SearchHit]:
        vector = q.vector if q.vector is not None else await self._query_vector(q.query or "")
        started = time.perf_counter()
        hits = await self.store.search(
            VectorQuery(q.user_id, vector, q.limit, self._clock(), q.min_score, q.filters)
        )
        self.telemetry.search(time.perf_counter() - started, len(hits))
        return hits

    async def _query_vector(self, text: str) -> list[float]:
        async def compute() -> list[float]:
            return (await self._embed([text]))[0]

        if self.recall_cache is None:
            return await compute()
        return await self.recall_cache.embedding(self.embedder.model, text, compute)

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


def _same(m: Memory, item: NewMemory, digest: str) -> bool:
    return (
        m.content_hash == digest
        and m.content == item.content
        and dict(m.metadata) == dict(item.metadata)
        and m.agent_id == item.agent_id
        and m.session_id == item.session_id
        and m.expires_at == item.expires_at
    )


def _build(
    item: NewMemory,
    old: MemoryRecord | None,
    vector: list[float],
    idempotency: str | None,
    now: datetime,
    memory_id: UUID,
) -> MemoryRecord:
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
    event = HistoryEvent(
        Event.UPDATE if live else Event.ADD, version, item.content, memory.metadata, now
    )
    history = (*(old.history if old else ()), event)
    return MemoryRecord(memory, vector, history, None, idempotency)
