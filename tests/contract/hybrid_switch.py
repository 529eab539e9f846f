"""A switch in front of a real store, and waits, for HybridStore's fault tests.

:class:`Switch` makes a real store fail or stall on demand; nothing else about
the store is faked. :func:`eventually` polls for an outcome with a bound that
only turns a hang into a failure: no test asserts on time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from membank_server.domain.errors import StorageUnavailable
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
from membank_server.storage.hybrid import HybridStore

__all__ = ["Events", "Switch", "eventually", "kinds", "now", "open_hybrid", "state"]

Events = list[tuple[str, dict[str, Any]]]


class Switch:
    """A real store behind switches: ``failing`` raises, a closed ``gate`` stalls.

    ``fail_after_write`` applies one write and then reports a failure anyway, as
    when a connection drops after the commit. Lifecycle calls always go through.
    """

    def __init__(self, inner: MemoryStore) -> None:
        self.inner = inner
        self.failing = False
        self.fail_after_write = False
        self.gate: asyncio.Event | None = None
        self.answered = 0
        self.cancelled = 0

    @property
    def backend(self) -> str:
        return self.inner.backend

    async def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        try:
            if self.gate is not None:
                await self.gate.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        if self.failing:
            raise StorageUnavailable(f"{self.inner.backend} is down (injected)")
        result = await getattr(self.inner, name)(*args, **kwargs)
        if self.fail_after_write and name in ("upsert", "delete_user", "purge_expired"):
            self.fail_after_write = False
            raise StorageUnavailable(f"{self.inner.backend} dropped the answer (injected)")
        self.answered += 1
        return result

    async def start(self) -> None:
        await self.inner.start()

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def drop(self) -> None:
        await self.inner.drop()

    async def optimize(self) -> bool:
        return await self.inner.optimize()

    async def upsert(
        self, records: Sequence[MemoryRecord], *, claims: Collection[UUID] = ()
    ) -> None:
        await self._call("upsert", records, claims=claims)

    async def history(
        self, user_id: str, memory_id: UUID, *, all_versions: bool = False
    ) -> tuple[HistoryEvent, ...]:
        found: tuple[HistoryEvent, ...] = await self._call(
            "history", user_id, memory_id, all_versions=all_versions
        )
        return found

    async def verify(self, progress: Callable[[int], None] | None = None) -> IntegrityReport:
        found: IntegrityReport = await self._call("verify", progress)
        return found

    async def discard(self, memory_ids: Sequence[UUID]) -> None:
        await self._call("discard", memory_ids)

    async def usage(self, user_id: str) -> Usage:
        found: Usage = await self._call("usage", user_id)
        return found

    async def get(self, user_id: str, memory_ids: Sequence[UUID]) -> dict[UUID, MemoryRecord]:
        found: dict[UUID, MemoryRecord] = await self._call("get", user_id, memory_ids)
        return found

    async def owners(self, memory_ids: Sequence[UUID]) -> dict[UUID, str]:
        found: dict[UUID, str] = await self._call("owners", memory_ids)
        return found

    async def find_by_hash(
        self, pairs: Sequence[tuple[str, str]], now: datetime
    ) -> dict[tuple[str, str], Memory]:
        found: dict[tuple[str, str], Memory] = await self._call("find_by_hash", pairs, now)
        return found

    async def list_page(self, user_id: str, **kwargs: Any) -> Page:
        page: Page = await self._call("list_page", user_id, **kwargs)
        return page

    async def search(self, query: VectorQuery) -> list[SearchHit]:
        hits: list[SearchHit] = await self._call("search", query)
        return hits

    async def search_lexical(self, query: VectorQuery) -> list[SearchHit]:
        hits: list[SearchHit] = await self._call("search_lexical", query)
        return hits

    async def rank(self, query: VectorQuery, *, lexical: bool = False) -> list[tuple[UUID, float]]:
        ranked: list[tuple[UUID, float]] = await self._call("rank", query, lexical=lexical)
        return ranked

    async def delete_user(self, user_id: str) -> int:
        n: int = await self._call("delete_user", user_id)
        return n

    async def purge_expired(self, now: datetime) -> int:
        n: int = await self._call("purge_expired", now)
        return n

    async def count(self, user_id: str | None = None) -> int:
        n: int = await self._call("count", user_id)
        return n

    async def info(self) -> CollectionInfo:
        info: CollectionInfo = await self._call("info")
        return info


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll until ``check`` holds; the bound only turns a hang into a failure."""
    for _ in range(3000):
        if await check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


def now() -> datetime:
    return datetime.now(UTC)


async def state(store: MemoryStore, user_id: str, ids: Sequence[UUID]) -> dict[UUID, Any]:
    """What a store holds for these ids: version, hash and tombstone of each."""
    found = await store.get(user_id, ids)
    return {
        i: (r.memory.version, r.memory.content_hash, r.deleted_at is not None)
        for i, r in found.items()
    }


def kinds(events: Events) -> list[str]:
    return [kind for kind, _ in events]


async def open_hybrid(opened: list[HybridStore], store: HybridStore) -> HybridStore:
    """Start a hybrid and remember it, so the test's teardown closes it."""
    await store.start()
    opened.append(store)
    return store
