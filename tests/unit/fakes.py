"""In-memory fakes of the ports, for unit tests of the services (no I/O)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from uuid import UUID

from membank_server.domain.errors import Conflict
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
    stored_bytes,
)


class FakeEmbedder:
    """Deterministic unit vectors from a hash of the text; counts its calls."""

    model = "fake"
    dimension = 8

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    async def start(self) -> None:
        return None

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls.append(list(texts))
        out = []
        for t in texts:
            raw = hashlib.sha256(t.encode()).digest()[: self.dimension]
            v = [b - 127.5 for b in raw]
            n = math.sqrt(sum(x * x for x in v))
            out.append([x / n for x in v])
        return out

    async def aclose(self) -> None:
        return None


class InMemoryStore:
    backend = "memory"

    def __init__(self, history_limit: int | None = None) -> None:
        self.records: dict[UUID, MemoryRecord] = {}
        self.events: dict[UUID, dict[tuple[int, str], HistoryEvent]] = {}
        self.history_limit = history_limit
        self.upserts = 0

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    async def optimize(self) -> bool:
        return False

    async def upsert(
        self, records: Sequence[MemoryRecord], *, claims: Collection[UUID] = ()
    ) -> None:
        taken = sorted(
            str(r.memory.id)
            for r in records
            if r.memory.id in claims
            and r.memory.id in self.records
            and self.records[r.memory.id].memory.user_id != r.memory.user_id
        )
        if taken:
            raise Conflict("this id belongs to another memory", {"ids": taken})
        self.upserts += 1
        for r in records:
            self.records[r.memory.id] = replace(r, history=())
            events = self.events.setdefault(r.memory.id, {})
            events.update({(h.version, h.event.value): h for h in r.history})
            if self.history_limit is not None:
                cutoff = r.memory.version - self.history_limit
                for key in [k for k in events if k[0] <= cutoff]:
                    del events[key]

    async def history(
        self, user_id: str, memory_id: UUID, *, all_versions: bool = False
    ) -> tuple[HistoryEvent, ...]:
        record = self.records.get(memory_id)
        if all_versions:
            events = self.events.get(memory_id, {}).values()
            return tuple(sorted(events, key=lambda h: (h.version, h.at)))
        if record is None or record.memory.user_id != user_id:
            return ()
        return self._events(record)

    def _events(self, record: MemoryRecord) -> tuple[HistoryEvent, ...]:
        events = self.events.get(record.memory.id, {}).values()
        kept = [h for h in events if h.version <= record.memory.version]
        return tuple(sorted(kept, key=lambda h: (h.version, h.at)))

    async def verify(self, progress: Callable[[int], None] | None = None) -> IntegrityReport:
        return IntegrityReport(checked=len(self.records))

    async def discard(self, memory_ids: Sequence[UUID]) -> None:
        for i in memory_ids:
            self.records.pop(i, None)
            self.events.pop(i, None)

    async def usage(self, user_id: str) -> Usage:
        live = self._live(user_id, datetime.now(UTC))
        return Usage(len(live), sum(stored_bytes(r.memory) for r in live))

    def _live(self, user_id: str, now: datetime) -> list[MemoryRecord]:
        return sorted(
            (
                r
                for r in self.records.values()
                if r.memory.user_id == user_id
                and r.deleted_at is None
                and not r.memory.is_expired(now)
            ),
            key=lambda r: r.memory.id,
        )

    async def get(self, user_id: str, memory_ids: Sequence[UUID]) -> dict[UUID, MemoryRecord]:
        return {
            i: self.records[i]
            for i in memory_ids
            if i in self.records and self.records[i].memory.user_id == user_id
        }

    async def owners(self, memory_ids: Sequence[UUID]) -> dict[UUID, str]:
        return {i: self.records[i].memory.user_id for i in memory_ids if i in self.records}

    async def find_by_hash(
        self, pairs: Sequence[tuple[str, str]], now: datetime
    ) -> dict[tuple[str, str], Memory]:
        out = {}
        for user_id, digest in pairs:
            for r in self._live(user_id, now):
                if r.memory.content_hash == digest:
                    out[(user_id, digest)] = r.memory
        return out

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
        rows = [
            r.memory
            for r in self._live(user_id, now)
            if (agent_id is None or r.memory.agent_id == agent_id)
            and (session_id is None or r.memory.session_id == session_id)
            and (cursor is None or r.memory.id >= UUID(cursor))
        ]
        nxt = str(rows[limit].id) if len(rows) > limit else None
        return Page(tuple(rows[:limit]), nxt)

    async def search(self, query: VectorQuery) -> list[SearchHit]:
        hits = [
            SearchHit(r.memory, sum(a * b for a, b in zip(r.vector, query.vector, strict=True)))
            for r in self._live(query.user_id, query.now)
        ]
        hits = [h for h in hits if query.min_score is None or h.score >= query.min_score]
        return sorted(hits, key=lambda h: -h.score)[: query.limit]

    async def delete_user(self, user_id: str) -> int:
        live = len(self._live(user_id, datetime.now(UTC)))
        gone = [k for k, v in self.records.items() if v.memory.user_id == user_id]
        for k in gone:
            del self.records[k]
            self.events.pop(k, None)
        return live

    async def purge_expired(self, now: datetime) -> int:
        gone = [k for k, v in self.records.items() if v.memory.is_expired(now)]
        for k in gone:
            del self.records[k]
            self.events.pop(k, None)
        return len(gone)

    async def count(self, user_id: str | None = None) -> int:
        now = datetime.now(UTC)
        return sum(
            1
            for r in self.records.values()
            if r.deleted_at is None
            and not r.memory.is_expired(now)
            and (user_id is None or r.memory.user_id == user_id)
        )

    async def info(self) -> CollectionInfo:
        return CollectionInfo("memory", "fake", 8, "dot", len(self.records), 0, 1)

    async def drop(self) -> None:
        self.records.clear()

    async def scan(
        self, cursor: str | None = None, limit: int = 500
    ) -> tuple[list[MemoryRecord], str | None]:
        rows = sorted(
            (r for r in self.records.values() if cursor is None or r.memory.id >= UUID(cursor)),
            key=lambda r: r.memory.id,
        )
        nxt = str(rows[limit].memory.id) if len(rows) > limit else None
        return [replace(r, history=self._events(r)) for r in rows[:limit]], nxt


def tombstone(record: MemoryRecord, at: datetime) -> MemoryRecord:
    return replace(record, deleted_at=at)


class DictCache:
    """A Cache that keeps everything in a dict and ignores TTLs."""

    name = "dict"

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    async def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return [self.data.get(k) for k in keys]

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        self.data[key] = value

    async def delete(self, keys: Sequence[str]) -> None:
        for k in keys:
            self.data.pop(k, None)

    async def clear(self, prefix: str = "") -> int:
        gone = [k for k in self.data if k.startswith(prefix)]
        for k in gone:
            del self.data[k]
        return len(gone)

    async def aclose(self) -> None:
        return None


class DictGenerations:
    """Generation counters in a dict; ``down`` makes them raise like a dead Redis."""

    def __init__(self) -> None:
        self.values: dict[str, int] = {}
        self.down = False

    def _check(self) -> None:
        if self.down:
            from membank_server.domain.errors import CacheUnavailable

            raise CacheUnavailable("generations are down")

    async def current(self, keys: Sequence[str]) -> list[int]:
        self._check()
        return [self.values.get(k, 0) for k in keys]

    async def bump(self, key: str) -> int:
        self._check()
        self.values[key] = self.values.get(key, 0) + 1
        return self.values[key]

    async def aclose(self) -> None:
        return None


class ListPopular:
    def __init__(self) -> None:
        self.seen: list[tuple[str, bytes]] = []

    async def record(self, user_id: str, query: bytes) -> None:
        self.seen.append((user_id, query))

    async def top(self, k: int) -> list[tuple[str, bytes, float]]:
        counts: dict[tuple[str, bytes], int] = {}
        for item in self.seen:
            counts[item] = counts.get(item, 0) + 1
        ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:k]
        return [(u, q, float(n)) for (u, q), n in ranked]
