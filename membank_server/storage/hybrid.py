"""HybridStore: one MemoryStore over two, with a write strategy and a read strategy.

Writes (``write=``):

``primary_only``
    The primary alone; the secondary is only read (a replica kept elsewhere).
``both``
    The primary, then the secondary; the call returns only when both have the
    write. When the secondary fails after the primary succeeded there is no
    generic way to undo the primary, so the write is queued in the outbox (when
    one is configured) and the call raises ``StorageUnavailable``: the client
    gets a 503 and retries, and as records are written whole the retry is
    idempotent. The queued copy repairs the secondary even if no retry comes.
    While the outbox holds anything, ``both`` writes fail fast, before touching
    either store: the secondary must get the queued writes first, in order.
    ``consistency=strong`` asks for exactly this mode.
``async_both``
    The primary and an outbox entry, then the answer; a background drainer
    (started by :meth:`HybridStore.start`) applies entries to the secondary in
    order, with retries and backoff, deleting each only once applied. When the
    primary can write in the outbox's transaction (``shared_transaction``: a
    ``PgVectorStore`` on the outbox's database) both commit together; otherwise
    the entry is appended right after the primary's write and a failure there is
    a 503 (the retry rewrites the primary, idempotently, and queues again).
    Entries are durable, so a crash between the two stores converges once a
    drainer runs again.

``delete_user`` and ``purge_expired`` follow the same strategy as upserts. Claimed
ids (``MemoryStore.upsert``) are decided by the primary alone; the secondary and the
outbox follow what the primary accepted.

Reads (``read=``) are ``primary_first``, ``fastest`` or ``both`` (merged by id; see
``_hybrid_reads``). ``on_event(kind, fields)`` hears ``fallback``, ``secondary_failed``,
``outbox_enqueued``, ``outbox_applied``, ``outbox_retry``, ``outbox_unavailable``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import Any, TypeVar
from uuid import UUID

from membank_server.domain.errors import ConfigError, StorageUnavailable
from membank_server.domain.integrity import IntegrityReport
from membank_server.domain.model import (
    CollectionInfo,
    HistoryEvent,
    Memory,
    MemoryRecord,
    Page,
    SearchHit,
    Usage,
    VectorQuery,
)
from membank_server.domain.ports import MemoryStore
from membank_server.domain.storage import HybridPolicy, WriteMode
from membank_server.storage._hybrid_reads import HybridReads
from membank_server.storage._merge import merge_hits, merge_pages, merge_ranks, prefer_primary
from membank_server.storage.outbox import (
    AtomicWriter,
    EventSink,
    InTransaction,
    OutboxDrainer,
    PgOutbox,
    delete_user_entry,
    purge_entry,
    upsert_entry,
)

__all__ = ["HybridStore"]

_T = TypeVar("_T")


class HybridStore:
    """A :class:`~membank_server.domain.ports.MemoryStore` over a primary and a secondary.

    Args:
        primary: The store of record: written first, read first.
        secondary: The copy.
        policy: How writes and reads use the two (see the module docs); its ``routed``
            read is a :class:`~membank_server.storage.routed.RoutedStore` in front of
            this one, which then reads ``primary_first``.
        outbox: Where writes wait for the secondary; needed by ``async_both``.
        shared_transaction: The primary can write the outbox's entries in its own
            transactions (a ``PgVectorStore`` on the outbox's database): both commit
            together. Bootstrap knows this from the settings; it is never guessed.
        on_event: Told about fallbacks and the outbox's work.
        drain_batch: Outbox entries applied per transaction.
        drain_interval: Seconds between looks at an idle outbox (other processes' entries).

    Raises:
        ConfigError: ``async_both`` without an outbox, or a shared transaction the
            primary cannot take part in.
    """

    backend = "hybrid"

    def __init__(
        self,
        primary: MemoryStore,
        secondary: MemoryStore,
        policy: HybridPolicy | None = None,
        *,
        outbox: PgOutbox | None = None,
        shared_transaction: bool = False,
        on_event: EventSink | None = None,
        drain_batch: int = 100,
        drain_interval: float = 1.0,
    ) -> None:
        policy = policy or HybridPolicy()
        if policy.write is WriteMode.ASYNC_BOTH and outbox is None:
            raise ConfigError("storage.hybrid.write=async_both needs an outbox")
        if shared_transaction and (outbox is None or not isinstance(primary, AtomicWriter)):
            raise ConfigError("a shared transaction needs an outbox and a pgvector primary")
        self.primary, self.secondary, self.outbox = primary, secondary, outbox
        self.policy = policy
        self.write, self.read = policy.write, policy.store_read
        self._on_event = on_event
        self._atomic = primary if shared_transaction and isinstance(primary, AtomicWriter) else None
        self._drainer = (
            OutboxDrainer(
                outbox, secondary, on_event=on_event, batch=drain_batch, interval=drain_interval
            )
            if outbox is not None and policy.write is not WriteMode.PRIMARY_ONLY
            else None
        )
        self._reader = HybridReads(primary, secondary, self.read, self._emit)

    # -- lifecycle ---------------------------------------------------------

    def _parts(self) -> list[Any]:
        return [self.primary, self.secondary, *([self.outbox] if self.outbox else [])]

    async def start(self) -> None:
        """Start both stores and the outbox, then the drainer; all or nothing."""
        try:
            for part in self._parts():
                await part.start()
        except BaseException as exc:
            await self._close_parts(exc)
            raise
        if self._drainer is not None:
            self._drainer.start()

    async def _close_parts(self, failure: BaseException | None = None) -> None:
        """Close every part; the first error is raised, or noted on ``failure``."""
        first: BaseException | None = None
        for part in self._parts():
            try:
                await part.aclose()
            except Exception as exc:  # noqa: BLE001 - every part gets its aclose; none is lost
                if failure is not None:
                    failure.add_note(f"closing {type(part).__name__} also failed: {exc!r}")
                elif first is None:
                    first = exc
                else:
                    first.add_note(f"closing {type(part).__name__} also failed: {exc!r}")
        if first is not None:
            raise first

    async def aclose(self) -> None:
        died = await self._drainer.stop() if self._drainer else None
        await self._reader.settle()
        await self._close_parts()
        if died is not None:
            raise StorageUnavailable(f"the outbox drainer had stopped: {died!r}") from died

    async def optimize(self) -> bool:
        primary = await self.primary.optimize()
        return await self.secondary.optimize() or primary

    async def drop(self) -> None:
        """Drop both collections and the outbox (its entries refer to dropped data)."""
        died = await self._drainer.stop() if self._drainer else None
        await self.secondary.drop()
        await self.primary.drop()
        if self.outbox is not None:
            await self.outbox.drop()
        if died is not None:
            raise StorageUnavailable(f"the outbox drainer had stopped: {died!r}") from died

    # -- events and the outbox ---------------------------------------------

    def _emit(self, kind: str, fields: dict[str, Any]) -> None:
        if self._on_event is not None:
            self._on_event(kind, fields)

    async def outbox_size(self) -> int:
        """Writes still waiting for the secondary (0 without an outbox)."""
        return await self.outbox.size() if self.outbox is not None else 0

    async def drain(self) -> int:
        """Apply what is due in the outbox to the secondary now; how many entries were."""
        if self._drainer is None:
            return 0
        return len((await self._drainer.drain()).applied)

    # -- write strategies --------------------------------------------------

    async def _write(
        self,
        op: str,
        entry: tuple[str, dict[str, Any]],
        call: Callable[[MemoryStore, bool], Awaitable[_T]],
        atomic: Callable[[AtomicWriter, InTransaction], Awaitable[_T]],
        *,
        queue_if: Callable[[_T], bool] = lambda _: True,
    ) -> _T:
        if self.write is WriteMode.PRIMARY_ONLY:
            return await call(self.primary, True)
        if self.write is WriteMode.BOTH:
            return await self._write_both(op, entry, call)
        assert self.outbox is not None
        if self._drainer is not None:
            self._drainer.check()
        if self._atomic is not None:
            result = await atomic(self._atomic, partial(self.outbox.enqueue_on, entries=[entry]))
        else:
            result = await call(self.primary, True)
            if queue_if(result):
                await self.outbox.enqueue([entry])
        if queue_if(result):
            self._queued(op, "async_both", atomic=self._atomic is not None)
        return result

    def _queued(self, op: str, reason: str, *, atomic: bool) -> None:
        self._emit("outbox_enqueued", {"op": op, "reason": reason, "atomic": atomic})
        if self._drainer is not None:
            self._drainer.wake()

    async def _write_both(
        self,
        op: str,
        entry: tuple[str, dict[str, Any]],
        call: Callable[[MemoryStore, bool], Awaitable[_T]],
    ) -> _T:
        if self.outbox is not None and await self.outbox.pending():
            raise StorageUnavailable(
                f"cannot {op} now: the secondary store is catching up on queued writes; retry"
            )
        result = await call(self.primary, True)
        try:
            await call(self.secondary, False)
        except StorageUnavailable as exc:
            queued = False
            try:
                if self.outbox is not None:
                    await self.outbox.enqueue([entry])
                    queued = True
                    self._queued(op, "secondary_failed", atomic=False)
            finally:
                self._emit("secondary_failed", {"op": op, "error": exc.message, "queued": queued})
            raise StorageUnavailable(
                f"{op} reached the primary store but not the secondary ({exc.message}); "
                + ("it is queued for the secondary; " if queued else "")
                + "retry the request"
            ) from exc
        return result

    async def upsert(
        self, records: Sequence[MemoryRecord], *, claims: Collection[UUID] = ()
    ) -> None:
        if not records:
            return
        await self._write(
            "upsert",
            upsert_entry(records),
            lambda s, primary: s.upsert(records, claims=claims if primary else ()),
            lambda s, also: s.upsert(records, claims=claims, also=also),
        )

    async def delete_user(self, user_id: str) -> int:
        return await self._write(
            "delete a user",
            delete_user_entry(user_id),
            lambda s, _: s.delete_user(user_id),
            lambda s, also: s.delete_user(user_id, also=also),
        )

    async def purge_expired(self, now: datetime) -> int:
        # Nothing purged from the primary, nothing to tell the secondary.
        return await self._write(
            "purge expired memories",
            purge_entry(now),
            lambda s, _: s.purge_expired(now),
            lambda s, also: s.purge_expired(now, also=also),
            queue_if=bool,
        )

    # -- read strategies ---------------------------------------------------

    async def get(self, user_id: str, memory_ids: Sequence[UUID]) -> dict[UUID, MemoryRecord]:
        return await self._reader.read("get", lambda s: s.get(user_id, memory_ids), prefer_primary)

    async def owners(self, memory_ids: Sequence[UUID]) -> dict[UUID, str]:
        return await self._reader.read(
            "look up owners", lambda s: s.owners(memory_ids), prefer_primary
        )

    async def history(
        self, user_id: str, memory_id: UUID, *, all_versions: bool = False
    ) -> tuple[HistoryEvent, ...]:
        return await self._reader.read(
            "read history", lambda s: s.history(user_id, memory_id, all_versions=all_versions)
        )

    async def usage(self, user_id: str) -> Usage:
        return await self._reader.primary_first("measure a user", lambda s: s.usage(user_id))

    async def verify(self, progress: Callable[[int], None] | None = None) -> IntegrityReport:
        """Both stores' reports in one; a problem names the store it is in."""
        report = IntegrityReport()
        for store in (self.primary, self.secondary):
            part = await store.verify(progress)
            report.checked += part.checked
            report.damaged.extend(
                replace(d, problem=f"{store.backend}: {d.problem}") for d in part.damaged
            )
            report.store_problems.extend(f"{store.backend}: {p}" for p in part.store_problems)
        return report

    async def discard(self, memory_ids: Sequence[UUID]) -> None:
        await self.primary.discard(memory_ids)
        await self.secondary.discard(memory_ids)

    async def find_by_hash(
        self, pairs: Sequence[tuple[str, str]], now: datetime
    ) -> dict[tuple[str, str], Memory]:
        return await self._reader.read(
            "find by hash", lambda s: s.find_by_hash(pairs, now), prefer_primary
        )

    async def list_page(
        self,
        user_id: str,
        *,
        now: datetime,
        limit: int,
        cursor: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
    ) -> Page:
        return await self._reader.read(
            "list",
            lambda s: s.list_page(
                user_id, now=now, limit=limit, cursor=cursor, agent_id=agent_id,
                session_id=session_id,
            ),
            merge_pages(limit),
        )  # fmt: skip

    async def scan(
        self, cursor: str | None = None, limit: int = 500
    ) -> tuple[list[MemoryRecord], str | None]:
        # An operator's walk: raced under fastest, else from the primary first.
        return await self._reader.read("scan", lambda s: s.scan(cursor, limit))

    async def search(self, query: VectorQuery) -> list[SearchHit]:
        return await self._reader.read("search", lambda s: s.search(query), merge_hits(query.limit))

    async def search_lexical(self, query: VectorQuery) -> list[SearchHit]:
        merge = merge_hits(query.limit)
        return await self._reader.read("search", lambda s: s.search_lexical(query), merge)

    async def rank(self, query: VectorQuery, *, lexical: bool = False) -> list[tuple[UUID, float]]:
        merge = merge_ranks(query.limit)
        return await self._reader.read("search", lambda s: s.rank(query, lexical=lexical), merge)

    async def count(self, user_id: str | None = None) -> int:
        return await self._reader.read("count", lambda s: s.count(user_id))

    async def info(self) -> CollectionInfo:
        info = await self._reader.primary_first("describe the collection", lambda s: s.info())
        try:
            waiting: int | str = await self.outbox_size()
        except StorageUnavailable as exc:
            waiting = f"unknown: {exc.message}"  # info still describes the stores
        return CollectionInfo(
            backend=self.backend,
            name=info.name,
            dimension=info.dimension,
            distance=info.distance,
            points=info.points,
            indexed_vectors=info.indexed_vectors,
            segments=info.segments,
            extra={
                **info.extra,
                "primary": self.primary.backend,
                "secondary": self.secondary.backend,
                "write": str(self.policy.write),
                "read": str(self.read),
                "consistency": str(self.policy.consistency),
                "outbox_size": waiting,
            },
        )
