"""Fixtures for the store contract suite: every store, opened on a fresh folder.

``edge`` is the embedded Qdrant Edge shard on disk; ``qdrant`` is qdrant-client's
on-disk local mode standing in for a Qdrant server. The same tests run on both.
"""

from __future__ import annotations

import math
import random
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from membank_server.domain.model import (
    Event,
    HistoryEvent,
    Memory,
    MemoryRecord,
    content_hash,
)
from membank_server.domain.ports import MemoryStore
from membank_server.storage.edge import EdgeStore
from membank_server.storage.qdrant import QdrantStore

__all__: list[str] = []

DIM = 8

StoreFactory = Callable[..., MemoryStore]
RecordFactory = Callable[..., MemoryRecord]


def _unit(seed: int | None = None, *, axes: Mapping[int, float] | None = None) -> list[float]:
    """A unit vector: random from ``seed``, or built from ``axes`` (index -> weight)."""
    if axes is not None:
        raw = [axes.get(i, 0.0) for i in range(DIM)]
    else:
        rng = random.Random(seed)
        raw = [rng.gauss(0.0, 1.0) for _ in range(DIM)]
    norm = math.sqrt(sum(x * x for x in raw))
    return [x / norm for x in raw]


def _record(
    user_id: str = "alice",
    vector: list[float] | None = None,
    *,
    id: UUID | None = None,
    content: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    agent_id: str | None = None,
    session_id: str | None = None,
    created_at: datetime | None = None,
    expires_at: datetime | None = None,
    deleted_at: datetime | None = None,
    version: int = 1,
    idempotency: str | None = None,
) -> MemoryRecord:
    memory_id = id or uuid4()
    text = content if content is not None else f"memory {memory_id}"
    created = created_at or datetime(2025, 1, 1, tzinfo=UTC)
    history = tuple(
        HistoryEvent(
            event=Event.ADD if v == 1 else Event.UPDATE,
            version=v,
            content=f"{text} (v{v})",
            metadata={"v": v},
            at=created + timedelta(minutes=v),
        )
        for v in range(1, version + 1)
    )
    if deleted_at is not None:
        history += (HistoryEvent(Event.DELETE, version, text, {}, deleted_at),)
    return MemoryRecord(
        memory=Memory(
            id=memory_id,
            user_id=user_id,
            content=text,
            metadata=dict(metadata or {}),
            created_at=created,
            updated_at=created + timedelta(minutes=version),
            version=version,
            content_hash=content_hash(text),
            agent_id=agent_id,
            session_id=session_id,
            expires_at=expires_at,
        ),
        vector=vector if vector is not None else _unit(memory_id.int % 10_000),
        history=history,
        deleted_at=deleted_at,
        idempotency=idempotency,
    )


@pytest.fixture
def dim() -> int:
    return DIM


@pytest.fixture
def unit() -> Callable[..., list[float]]:
    """Deterministic unit vectors of the suite's dimension."""
    return _unit


@pytest.fixture
def new_record() -> RecordFactory:
    """Build a MemoryRecord with a history; every field can be overridden."""
    return _record


@pytest.fixture(params=["edge", "qdrant"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """Make an unstarted store of this backend; every call reuses the same folder."""
    backend: str = request.param

    def make(dimension: int = DIM) -> MemoryStore:
        if backend == "edge":
            return EdgeStore(tmp_path / "edge", dimension=dimension)
        return QdrantStore(
            collection="memories", dimension=dimension, path=str(tmp_path / "qdrant")
        )

    return make


@pytest.fixture
async def store(open_store: StoreFactory) -> AsyncIterator[MemoryStore]:
    opened = open_store()
    await opened.start()
    yield opened
    await opened.aclose()
