"""Fixtures for the store contract suite: every store, opened on a fresh folder or schema.

``edge`` is the embedded Qdrant Edge shard on disk; ``qdrant`` is qdrant-client's
on-disk local mode standing in for a Qdrant server; ``pgvector`` is the real
PostgreSQL + pgvector of scripts/services, in a schema of its own per test.
``hybrid-*`` are HybridStores over an Edge shard and a pgvector schema: writes to
both with the outbox behind them (``both``), pgvector plus an outbox drained into
Edge in the background (``async``), reads raced (``fastest``) or merged
(``merge``). ``encrypted-edge`` is the Edge shard behind an EncryptedStore (metadata
keys ``a`` and ``v`` sealed too). The same tests run on all of them.
"""

from __future__ import annotations

import math
import random
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg  # type: ignore[import-untyped]
import pytest

from membank_server.archive.local import LocalTarget
from membank_server.domain.model import (
    Event,
    HistoryEvent,
    Memory,
    MemoryRecord,
    content_hash,
)
from membank_server.domain.ports import BackupTarget, MemoryStore
from membank_server.domain.storage import (
    Consistency,
    HybridPolicy,
    ReadMode,
    StoreKind,
    WriteMode,
)
from membank_server.lexical import SnowballAnalyzer
from membank_server.pg import PoolSettings
from membank_server.security.crypto import KeyRing, add_key_to_file, generate_key
from membank_server.security.encrypted_store import EncryptedStore
from membank_server.storage.edge import EdgeStore
from membank_server.storage.hybrid import HybridStore
from membank_server.storage.outbox import PgOutbox
from membank_server.storage.pgvector import PgVectorStore
from membank_server.storage.qdrant import QdrantStore
from tests.support.backup import s3_target

__all__: list[str] = []

DIM = 8
_POOL = PoolSettings(max_size=4)

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


@pytest.fixture
async def pg_schema(pg_dsn: str) -> AsyncIterator[str]:
    """A schema name no other test uses, dropped with everything in it afterwards."""
    schema = f"t_{uuid4().hex[:12]}"
    yield schema
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


#: name: (primary, policy, with an outbox)
_HYBRIDS: dict[str, tuple[StoreKind, HybridPolicy, bool]] = {
    "hybrid-both": (
        StoreKind.EDGE,
        HybridPolicy(WriteMode.BOTH, consistency=Consistency.STRONG),
        True,
    ),
    "hybrid-async": (StoreKind.PGVECTOR, HybridPolicy(WriteMode.ASYNC_BOTH), True),
    "hybrid-fastest": (StoreKind.EDGE, HybridPolicy(WriteMode.BOTH, ReadMode.FASTEST), False),
    "hybrid-merge": (StoreKind.PGVECTOR, HybridPolicy(WriteMode.BOTH, ReadMode.BOTH), False),
}


@pytest.fixture
def events() -> list[tuple[str, dict[str, Any]]]:
    """What a HybridStore under test reports through on_event."""
    return []


@pytest.fixture
def edge(tmp_path: Path, dim: int) -> EdgeStore:
    return EdgeStore(tmp_path / "edge", dimension=dim)


@pytest.fixture
def pg(pg_dsn: str, pg_schema: str, dim: int) -> PgVectorStore:
    return PgVectorStore(pg_dsn, dimension=dim, schema=pg_schema, pool=_POOL)


@pytest.fixture(params=["edge", "qdrant", "pgvector", *_HYBRIDS, "encrypted-edge"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """Make an unstarted store of this backend; every call reuses the same folder or schema."""
    backend: str = request.param
    pg_dsn = pg_schema = ""
    if backend == "pgvector" or backend in _HYBRIDS:
        # Asked for here, so the embedded stores' tests need no PostgreSQL.
        pg_dsn = request.getfixturevalue("pg_dsn")
        pg_schema = request.getfixturevalue("pg_schema")

    def pgvector(dimension: int) -> PgVectorStore:
        return PgVectorStore(pg_dsn, dimension=dimension, schema=pg_schema, pool=_POOL)

    ring = KeyRing.from_settings(keys={"k1": generate_key()}, active="k1", index_key=generate_key())

    def make(dimension: int = DIM) -> MemoryStore:
        if backend == "edge":
            return EdgeStore(tmp_path / "edge", dimension=dimension)
        if backend == "encrypted-edge":
            edge = EdgeStore(tmp_path / "edge", dimension=dimension)
            return EncryptedStore(edge, ring, metadata_keys=("a", "v"), analyzer=SnowballAnalyzer())
        if backend == "pgvector":
            return pgvector(dimension)
        if backend in _HYBRIDS:
            kind, policy, with_outbox = _HYBRIDS[backend]
            edge = EdgeStore(tmp_path / "edge", dimension=dimension)
            pg = pgvector(dimension)
            primary, secondary = (edge, pg) if kind is StoreKind.EDGE else (pg, edge)
            outbox = PgOutbox(pg_dsn, schema=pg_schema) if with_outbox else None
            return HybridStore(
                primary,
                secondary,
                policy,
                outbox=outbox,
                # The outbox is in the primary's database: one transaction for both.
                shared_transaction=outbox is not None and kind is StoreKind.PGVECTOR,
            )
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


@pytest.fixture(params=["local", "s3"])
async def backup_target(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[BackupTarget]:
    """Every backup target: a local folder, and a fresh prefix on the real SeaweedFS."""
    if request.param == "local":
        made: BackupTarget = LocalTarget(tmp_path / "backups")
    else:
        made = s3_target(request.getfixturevalue("s3"), f"contract/{uuid4().hex}")
    yield made
    await made.aclose()


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "keys.json"
    add_key_to_file(path)
    return path


@pytest.fixture
def inner(store: MemoryStore) -> MemoryStore:
    """conftest's opened store, the one being wrapped."""
    return store


@pytest.fixture
def enc(inner: MemoryStore, keys_file: Path) -> EncryptedStore:
    return EncryptedStore(
        inner,
        KeyRing.from_file(keys_file),
        metadata_keys=["diagnosis"],
        analyzer=SnowballAnalyzer(),
    )
