"""Data and helpers for the backup service tests: stores with real histories, read back whole.

:func:`workload` writes memories the way the service does (version 1 ADD, then UPDATE
events, a DELETE making a tombstone), in store-sized batches, with client vectors:
no embedding. :func:`snapshot` reads a store back whole, for comparing two stores
record by record (history included).
"""

from __future__ import annotations

import array
import math
import random
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from membank_server.archive.repository import ArchiveRepository
from membank_server.bootstrap import snapshot_store
from membank_server.domain.backup_ports import BackupSource
from membank_server.domain.model import (
    Event,
    HistoryEvent,
    Memory,
    MemoryRecord,
    SearchHit,
    VectorQuery,
    content_hash,
)
from membank_server.domain.ports import BackupArchive, BackupTarget, MemoryStore
from membank_server.services._backup_extras import BackupExtras
from membank_server.services.backup import BackupService
from membank_server.storage.edge import EdgeStore

__all__ = [
    "T0",
    "float32",
    "make_service",
    "new_memory",
    "queries",
    "snapshot",
    "top10",
    "unit_vector",
    "update",
    "workload",
]

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def unit_vector(rng: random.Random, dim: int) -> list[float]:
    raw = [rng.gauss(0.0, 1.0) for _ in range(dim)]
    norm = math.sqrt(sum(x * x for x in raw))
    return [x / norm for x in raw]


def new_memory(rng: random.Random, user: str, dim: int, n: int) -> MemoryRecord:
    """A fresh memory at version 1 (an ADD event), with a client vector."""
    memory_id = UUID(int=rng.getrandbits(128), version=4)
    text = f"{user} note {n}: {rng.choice(['tea', 'chess', 'rain', 'jazz', 'maps'])} {n * 7}"
    at = T0 + timedelta(seconds=n)
    meta: dict[str, Any] = {"n": n, "topic": rng.choice(["a", "b", "c"])}
    memory = Memory(
        id=memory_id,
        user_id=user,
        content=text,
        metadata=meta,
        created_at=at,
        updated_at=at,
        version=1,
        content_hash=content_hash(text),
        agent_id=rng.choice([None, "agent-1", "agent-2"]),
        session_id=rng.choice([None, f"s{n % 7}"]),
        expires_at=rng.choice([None, None, T0 + timedelta(days=3650)]),
    )
    return MemoryRecord(
        memory, unit_vector(rng, dim), (HistoryEvent(Event.ADD, 1, text, meta, at),)
    )


def update(r: MemoryRecord, rng: random.Random, dim: int, *, delete: bool = False) -> MemoryRecord:
    """The record after one more write: an UPDATE (new text and vector) or a DELETE."""
    m = r.memory
    v = m.version + 1
    at = m.updated_at + timedelta(minutes=5)
    if delete:
        event = HistoryEvent(Event.DELETE, v, m.content, dict(m.metadata), at)
        return replace(
            r,
            memory=replace(m, version=v, updated_at=at),
            history=(*r.history, event),
            deleted_at=at,
        )
    text = f"{m.content} (edit {v})"
    meta = {**m.metadata, "v": v}
    event = HistoryEvent(Event.UPDATE, v, text, meta, at)
    memory = replace(
        m, content=text, metadata=meta, version=v, updated_at=at, content_hash=content_hash(text)
    )
    return replace(r, memory=memory, vector=unit_vector(rng, dim), history=(*r.history, event))


async def workload(
    store: MemoryStore,
    *,
    memories: int,
    users: int,
    dim: int,
    seed: int = 7,
    batch: int = 1000,
) -> list[MemoryRecord]:
    """Write ``memories`` over ``users``: every fourth updated once or twice, every tenth
    deleted after that, so histories have one to four events. Returns what was written."""
    rng = random.Random(seed)
    made = []
    for n in range(memories):
        r = new_memory(rng, f"user-{n % users:04d}", dim, n)
        for _ in range(rng.choice([1, 2]) if n % 4 == 0 else 0):
            r = update(r, rng, dim)
        if n % 10 == 3:
            r = update(r, rng, dim, delete=True)
        made.append(r)
    for at in range(0, len(made), batch):
        await store.upsert(made[at : at + batch])
    return made


async def snapshot(store: MemoryStore) -> dict[UUID, MemoryRecord]:
    """Every record of a store (tombstones and history included), by id."""
    out: dict[UUID, MemoryRecord] = {}
    cursor: str | None = None
    while True:
        page, cursor = await store.scan(cursor, 1000)
        for r in page:
            out[r.memory.id] = replace(r, history=tuple(r.history))
        if cursor is None:
            return out


def float32(records: dict[UUID, MemoryRecord]) -> dict[UUID, MemoryRecord]:
    """The records with their vectors as a store of float32 keeps them (no-op for one)."""
    return {i: replace(r, vector=array.array("f", r.vector).tolist()) for i, r in records.items()}


def queries(dim: int, users: Sequence[str], seed: int = 99) -> list[tuple[str, list[float]]]:
    rng = random.Random(seed)
    return [(u, unit_vector(rng, dim)) for u in users]


async def top10(store: MemoryStore, asked: Sequence[tuple[str, list[float]]]) -> list[Any]:
    """The ids (and rounded scores) of the 10 nearest live memories of each query."""
    found: list[Any] = []
    for user, vector in asked:
        hits: list[SearchHit] = await store.search(VectorQuery(user, vector, 10, T0))
        found.append([(str(h.memory.id), round(h.score, 4)) for h in hits])
    return found


def make_service(
    store: MemoryStore | None,
    target: Callable[[], BackupTarget],
    *,
    dim: int,
    extras: BackupExtras | None = None,
    embedder: str = "test-embedder@1",
    part_size: int = 8 * 1024 * 1024,
    scratch_root: Path | None = None,
    **options: Any,
) -> BackupService:
    """A BackupService over ``store`` writing to the target ``target()`` opens (each
    operation opens and closes its own); a deep verify restores into an Edge store
    under ``scratch_root``. ``cipher`` seals and opens the parts."""
    cipher = options.pop("cipher", None)

    def archives(url: str | None) -> BackupArchive:
        return ArchiveRepository(target(), cipher, part_size=part_size)

    @asynccontextmanager
    async def scratch(dimension: int) -> Any:
        assert scratch_root is not None
        folder = scratch_root / f"scratch-{random.getrandbits(32):08x}"
        made = EdgeStore(folder, dimension=dimension)
        await made.start()
        try:
            yield made
        finally:
            await made.aclose()

    scratch_factory: Callable[[int], AbstractAsyncContextManager[MemoryStore]] | None = (
        scratch if scratch_root is not None else None
    )
    options.setdefault("snapshots", snapshot_store(store) if store is not None else None)
    return BackupService(
        store,
        archives,
        BackupSource(backend=store.backend if store else "none", dimension=dim, embedder=embedder),
        extras=extras,
        scratch=scratch_factory,
        **options,
    )
