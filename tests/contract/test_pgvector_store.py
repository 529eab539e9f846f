"""What only PgVectorStore does: migrations, distances, the HNSW scan, driver errors.

Runs on the real PostgreSQL + pgvector of scripts/services, one schema per test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]
import pytest

from membank_server.domain.errors import ConfigError, InvalidInput, StorageUnavailable
from membank_server.domain.model import (
    MemoryRecord,
    MetadataCondition,
    SearchFilter,
    VectorQuery,
)
from membank_server.pg import PoolSettings
from membank_server.storage.pgvector import PgVectorStore

__all__: list[str] = []

Records = Callable[..., MemoryRecord]
Unit = Callable[..., list[float]]


def _now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def make(pg_dsn: str, pg_schema: str, dim: int) -> Callable[..., PgVectorStore]:
    def build(**kwargs: object) -> PgVectorStore:
        options: dict[str, object] = {
            "dimension": dim,
            "schema": pg_schema,
            "pool": PoolSettings(max_size=2),
        }
        options.update(kwargs)
        return PgVectorStore(pg_dsn, **options)  # type: ignore[arg-type]

    return build


@pytest.fixture
async def admin(pg_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(pg_dsn)
    yield conn
    await conn.close()


async def test_migrations_are_versioned_and_applied_once(
    make: Callable[..., PgVectorStore], admin: asyncpg.Connection, pg_schema: str
) -> None:
    store = make()

    assert await store.migrate() == [1, 2, 3]
    assert await store.migrate() == []

    rows = await admin.fetch(f'SELECT component, version FROM "{pg_schema}".schema_migrations')
    assert [(r["component"], r["version"]) for r in rows] == [
        ("memories:memories", 1),
        ("memories:memories", 2),
        ("memories:memories", 3),
    ]


async def test_instances_starting_together_do_not_race(make: Callable[..., PgVectorStore]) -> None:
    stores = [make() for _ in range(4)]

    await asyncio.gather(*(s.start() for s in stores))

    assert sorted([await s.count() for s in stores]) == [0, 0, 0, 0]
    for s in stores:
        await s.aclose()


async def test_without_migrate_start_refuses_a_missing_table(
    make: Callable[..., PgVectorStore],
) -> None:
    with pytest.raises(ConfigError, match="collection setup"):
        await make(migrate=False).start()

    await make().migrate()
    store = make(migrate=False)
    await store.start()
    assert await store.count() == 0
    await store.aclose()


async def test_start_refuses_another_distance(make: Callable[..., PgVectorStore]) -> None:
    await make(distance="cosine").migrate()

    with pytest.raises(ConfigError, match="vector_ip_ops"):
        await make(distance="dot").start()


@pytest.mark.parametrize(
    ("distance", "expected"),
    [
        ("cosine", [1.0, 0.8]),
        ("dot", [2.0, 1.6]),  # the inner product
        ("euclid", [1.0, 1 / (1 + 1.6**0.5)]),  # 1 / (1 + distance)
    ],
)
async def test_scores_for_each_distance(
    make: Callable[..., PgVectorStore],
    new_record: Records,
    distance: str,
    expected: list[float],
) -> None:
    store = make(distance=distance)
    await store.start()
    exact = new_record("alice", [2.0, 0, 0, 0, 0, 0, 0, 0])
    off = new_record("alice", [1.6, 1.2, 0, 0, 0, 0, 0, 0])  # cosine 0.8 to the query
    query = [1.0, 0, 0, 0, 0, 0, 0, 0] if distance != "euclid" else [2.0, 0, 0, 0, 0, 0, 0, 0]
    await store.upsert([off, exact])

    hits = await store.search(VectorQuery("alice", query, 10, _now()))

    assert [h.memory.id for h in hits] == [exact.memory.id, off.memory.id]
    assert [h.score for h in hits] == pytest.approx(expected, abs=1e-5)
    above = await store.search(
        VectorQuery("alice", query, 10, _now(), min_score=expected[1] + 0.01)
    )
    assert [h.memory.id for h in above] == [exact.memory.id]
    await store.aclose()


async def test_a_selective_filter_still_fills_the_page(
    make: Callable[..., PgVectorStore], new_record: Records, unit: Unit, admin: asyncpg.Connection,
    pg_schema: str,
) -> None:  # fmt: skip
    # ef_search 10: without iterative scanning HNSW would stop among the crowd
    # near the query and return none of the five rare rows.
    store = make(hnsw_ef_search=10)
    await store.start()
    crowd = [
        new_record("alice", unit(axes={0: 1.0, 1: (i % 97) / 500, 2: (i % 89) / 500}))
        for i in range(3000)
    ]
    rare = [
        new_record("alice", unit(axes={1: 1.0, 3: i / 10}), metadata={"rare": True})
        for i in range(5)
    ]
    await store.upsert(crowd + rare)
    await admin.execute(f'ANALYZE "{pg_schema}".memories')
    only_rare = SearchFilter(metadata=(MetadataCondition("rare", equals=True),))

    hits = await store.search(
        VectorQuery("alice", unit(axes={0: 1.0}), 5, _now(), filters=only_rare)
    )

    assert {h.memory.id for h in hits} == {r.memory.id for r in rare}
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    await store.aclose()


async def test_info_reports_the_index_as_built(
    make: Callable[..., PgVectorStore], new_record: Records, pg_schema: str
) -> None:
    store = make(hnsw_m=8, hnsw_ef_construction=32, hnsw_ef_search=40)
    await store.start()
    await store.upsert([new_record("alice"), new_record("bob", vector=[])])

    info = await store.info()

    assert (info.points, info.indexed_vectors, info.segments) == (2, 1, 1)
    assert info.extra["hnsw"] == {"m": 8, "ef_construction": 32, "ef_search": 40}
    assert info.extra["schema"] == pg_schema
    assert info.extra["server_version"].startswith("18")
    await store.aclose()


async def test_drop_leaves_the_rest_of_the_schema_alone(
    make: Callable[..., PgVectorStore], admin: asyncpg.Connection, pg_schema: str
) -> None:
    store = make()
    await store.start()
    await admin.execute(f'CREATE TABLE "{pg_schema}".other (x int)')

    await store.drop()

    tables = await admin.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY 1", pg_schema
    )
    assert [t["tablename"] for t in tables] == ["other", "schema_migrations"]
    with pytest.raises(StorageUnavailable):
        await store.count()


async def test_a_refused_value_is_invalid_input_not_unavailable(
    make: Callable[..., PgVectorStore], new_record: Records
) -> None:
    store = make()
    await store.start()

    with pytest.raises(InvalidInput):
        await store.upsert([new_record("alice", content="nul \x00 byte")])
    with pytest.raises(InvalidInput, match="cursor"):
        await store.list_page("alice", now=_now(), limit=5, cursor="not-a-cursor")
    assert await store.count() == 0
    await store.aclose()


async def test_unreachable_server_is_unavailable_and_the_password_stays_secret(
    pg_dsn: str, dim: int
) -> None:
    parts = urlsplit(pg_dsn)
    # Port 1 on loopback: nothing listens there.
    dead = urlunsplit(parts._replace(netloc=f"membank:hunter2-secret@{parts.hostname}:1"))
    store = PgVectorStore(dead, dimension=dim, pool=PoolSettings(connect_timeout=5.0))

    with pytest.raises(StorageUnavailable) as caught:
        await store.start()

    assert f"{parts.hostname}:1/" in caught.value.message
    assert "hunter2-secret" not in caught.value.message
    assert "hunter2-secret" not in repr(caught.value.__cause__)


async def test_a_missing_database_is_a_config_error(pg_dsn: str, dim: int) -> None:
    missing = urlunsplit(urlsplit(pg_dsn)._replace(path="/no_such_membank_db"))

    with pytest.raises(ConfigError, match="no_such_membank_db"):
        await PgVectorStore(missing, dimension=dim).start()


async def test_statement_timeout_is_storage_unavailable(
    make: Callable[..., PgVectorStore], admin: asyncpg.Connection, pg_schema: str
) -> None:
    store = make(pool=PoolSettings(max_size=2, statement_timeout_ms=200))
    await store.start()

    async with admin.transaction():
        # Held until the transaction ends: the count waits, then is cancelled.
        await admin.execute(f'LOCK TABLE "{pg_schema}".memories IN ACCESS EXCLUSIVE MODE')
        with pytest.raises(StorageUnavailable, match="statement_timeout"):
            await store.count()

    assert await store.count() == 0
    await store.aclose()


async def test_reads_survive_a_dropped_connection(
    make: Callable[..., PgVectorStore], admin: asyncpg.Connection, new_record: Records
) -> None:
    store = make(pool=PoolSettings(min_size=1, max_size=1))
    await store.start()
    await store.upsert([new_record("alice")])
    assert await store.count() == 1

    # Its one pooled backend (a peek inside: no public API names a connection).
    async with store.db._pool.acquire() as conn:
        pid = conn.get_server_pid()
    killed = await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    assert killed is True

    assert await store.count() == 1
    await store.aclose()
