"""HybridStore's writes under faults, with real stores: Edge, pgvector and the outbox.

A store is made to fail by :class:`~tests.contract.hybrid_switch.Switch`, a proxy
in front of a real store; the outbox, the drainer and both stores are the real
ones. Nothing here asserts on time: waits poll for an outcome.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest

from membank_server.domain.errors import StorageUnavailable
from membank_server.domain.model import MemoryRecord
from membank_server.domain.ports import MemoryStore
from membank_server.domain.storage import Consistency, HybridPolicy, WriteMode
from membank_server.storage.edge import EdgeStore
from membank_server.storage.hybrid import HybridStore
from membank_server.storage.outbox import PgOutbox
from membank_server.storage.pgvector import PgVectorStore
from tests.contract.hybrid_switch import (
    Events,
    Switch,
    eventually,
    kinds,
    now,
    open_hybrid,
    state,
)

__all__: list[str] = []

Records = Callable[..., MemoryRecord]


@pytest.fixture
def outbox(pg_dsn: str, pg_schema: str) -> PgOutbox:
    # Short backoff: a recovered secondary is retried within a few hundredths of a second.
    return PgOutbox(pg_dsn, schema=pg_schema, retry_base=0.01, retry_cap=0.05)


@pytest.fixture
async def opened() -> AsyncIterator[list[HybridStore]]:
    """Hybrids a test starts; closed at the end whatever happened."""
    stores: list[HybridStore] = []
    yield stores
    for store in stores:
        await store.aclose()


# -- write=both ------------------------------------------------------------------


async def test_both_answers_503_when_the_secondary_fails_then_the_outbox_repairs_it(
    edge: EdgeStore,
    pg: PgVectorStore,
    outbox: PgOutbox,
    events: Events,
    opened: list[HybridStore],
    new_record: Records,
) -> None:
    secondary = Switch(pg)
    hybrid = await open_hybrid(
        opened,
        HybridStore(
            edge, secondary, HybridPolicy(WriteMode.BOTH, consistency=Consistency.STRONG),
            outbox=outbox,
            on_event=lambda kind, fields: events.append((kind, fields)), drain_interval=0.01,
        ),
    )  # fmt: skip
    first, second, third = (new_record("alice") for _ in range(3))
    await hybrid.upsert([first])

    secondary.failing = True
    with pytest.raises(StorageUnavailable, match="queued for the secondary"):
        await hybrid.upsert([second])

    assert list(await edge.get("alice", [second.memory.id])) == [second.memory.id]
    assert await pg.get("alice", [second.memory.id]) == {}
    assert await hybrid.outbox_size() == 1
    assert ("secondary_failed", {"op": "upsert", "error": "pgvector is down (injected)",
                                 "queued": True}) in events  # fmt: skip
    assert "outbox_enqueued" in kinds(events)

    # Queued writes go first: a new write is refused before it touches either store.
    with pytest.raises(StorageUnavailable, match="catching up"):
        await hybrid.upsert([third])
    assert await edge.get("alice", [third.memory.id]) == {}

    async def retried() -> bool:
        return "outbox_retry" in kinds(events)

    await eventually(retried, "the drainer retries the queued write")
    assert await hybrid.outbox_size() == 1

    secondary.failing = False

    async def drained() -> bool:
        return await hybrid.outbox_size() == 0

    await eventually(drained, "the outbox drains once the secondary is back")
    ids = [first.memory.id, second.memory.id]
    assert await state(pg, "alice", ids) == await state(edge, "alice", ids)
    assert len(await state(pg, "alice", ids)) == 2
    assert "outbox_applied" in kinds(events)

    await hybrid.upsert([third])
    assert list(await pg.get("alice", [third.memory.id])) == [third.memory.id]


async def test_both_without_an_outbox_relies_on_the_client_retry(
    edge: EdgeStore, pg: PgVectorStore, opened: list[HybridStore], new_record: Records
) -> None:
    secondary = Switch(pg)
    hybrid = await open_hybrid(opened, HybridStore(edge, secondary, HybridPolicy(WriteMode.BOTH)))
    rec = new_record("alice")

    secondary.failing = True
    with pytest.raises(StorageUnavailable, match="retry the request") as caught:
        await hybrid.upsert([rec])
    assert "queued" not in caught.value.message
    assert await pg.get("alice", [rec.memory.id]) == {}

    secondary.failing = False
    await hybrid.upsert([rec])  # the client's retry: the same whole record, written again

    assert await state(pg, "alice", [rec.memory.id]) == await state(edge, "alice", [rec.memory.id])
    assert await hybrid.outbox_size() == 0


# -- write=async_both ------------------------------------------------------------


@pytest.mark.parametrize("primary_kind", ["pgvector", "edge"])
async def test_async_both_answers_while_the_secondary_is_down_and_converges(
    primary_kind: str,
    edge: EdgeStore,
    pg: PgVectorStore,
    outbox: PgOutbox,
    events: Events,
    opened: list[HybridStore],
    new_record: Records,
) -> None:
    # pgvector first: the outbox row commits in the primary's transaction;
    # edge first: the row is appended right after the primary's write.
    primary, inner = (pg, edge) if primary_kind == "pgvector" else (edge, pg)
    secondary = Switch(inner)
    hybrid = await open_hybrid(
        opened,
        HybridStore(
            primary, secondary, HybridPolicy(WriteMode.ASYNC_BOTH), outbox=outbox,
            shared_transaction=primary is pg,
            on_event=lambda kind, fields: events.append((kind, fields)), drain_interval=0.01,
        ),
    )  # fmt: skip
    secondary.failing = True
    alice = [new_record("alice") for _ in range(3)]
    bob = [new_record("bob") for _ in range(2)]
    expired = new_record("alice", expires_at=now() - timedelta(hours=1))

    await hybrid.upsert([*alice, *bob, expired])
    updated = new_record("alice", id=alice[0].memory.id, content="changed", version=2)
    await hybrid.upsert([updated])
    assert await hybrid.delete_user("bob") == 2
    assert await hybrid.purge_expired(now()) == 1

    assert await hybrid.outbox_size() == 4
    enqueued = [f for kind, f in events if kind == "outbox_enqueued"]
    assert [f["op"] for f in enqueued] == [
        "upsert", "upsert", "delete a user", "purge expired memories",
    ]  # fmt: skip
    assert {f["atomic"] for f in enqueued} == {primary_kind == "pgvector"}

    async def retried() -> bool:
        return "outbox_retry" in kinds(events)

    await eventually(retried, "the drainer retries while the secondary is down")
    secondary.failing = False

    async def drained() -> bool:
        return await hybrid.outbox_size() == 0

    await eventually(drained, "the outbox drains once the secondary is back")
    alice_ids = [r.memory.id for r in [*alice, expired]]
    bob_ids = [r.memory.id for r in bob]
    assert await state(inner, "alice", alice_ids) == await state(primary, "alice", alice_ids)
    assert set(await state(inner, "alice", alice_ids)) == {r.memory.id for r in alice}
    assert (await state(inner, "alice", [updated.memory.id]))[updated.memory.id][0] == 2
    assert await inner.get("bob", bob_ids) == {}
    assert len([kind for kind in kinds(events) if kind == "outbox_applied"]) == 4


async def test_async_both_commits_the_outbox_row_with_the_primary_write(
    edge: EdgeStore,
    pg: PgVectorStore,
    outbox: PgOutbox,
    opened: list[HybridStore],
    new_record: Records,
    pg_dsn: str,
    pg_schema: str,
) -> None:
    hybrid = await open_hybrid(
        opened,
        HybridStore(
            pg, edge, HybridPolicy(WriteMode.ASYNC_BOTH), outbox=outbox,
            shared_transaction=True, drain_interval=0.01,
        ),
    )  # fmt: skip
    lost = new_record("alice")
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(f'DROP TABLE "{pg_schema}"."memories_outbox"')
    finally:
        await conn.close()

    with pytest.raises(StorageUnavailable):
        await hybrid.upsert([lost])

    # No outbox row, no primary row: one transaction.
    assert await pg.get("alice", [lost.memory.id]) == {}

    await outbox.drop()
    await outbox.start()
    kept = new_record("alice")
    await hybrid.upsert([kept])

    async def applied() -> bool:
        return bool(await edge.get("alice", [kept.memory.id]))

    await eventually(applied, "the write reaches the secondary")
    assert await edge.get("alice", [lost.memory.id]) == {}


async def test_queued_writes_survive_a_restart(
    tmp_path: Path,
    pg_dsn: str,
    pg_schema: str,
    opened: list[HybridStore],
    new_record: Records,
    dim: int,
) -> None:
    def build(secondary: MemoryStore) -> HybridStore:
        return HybridStore(
            PgVectorStore(pg_dsn, dimension=dim, schema=pg_schema),
            secondary,
            HybridPolicy(WriteMode.ASYNC_BOTH),
            outbox=PgOutbox(pg_dsn, schema=pg_schema, retry_base=0.01, retry_cap=0.05),
            shared_transaction=True,
            drain_interval=0.01,
        )

    down = Switch(EdgeStore(tmp_path / "edge", dimension=dim))
    down.failing = True
    before = build(down)
    await before.start()
    recs = [new_record("alice") for _ in range(5)]
    await before.upsert(recs)
    assert await before.outbox_size() == 1
    await before.aclose()  # the process stops with the secondary behind

    edge = EdgeStore(tmp_path / "edge", dimension=dim)
    after = await open_hybrid(opened, build(edge))

    async def drained() -> bool:
        return await after.outbox_size() == 0

    await eventually(drained, "a new process drains what the old one queued")
    ids = [r.memory.id for r in recs]
    assert await state(edge, "alice", ids) == await state(after.primary, "alice", ids)
    assert len(await state(edge, "alice", ids)) == 5


async def test_a_write_applied_but_not_acknowledged_is_replayed_harmlessly(
    pg: PgVectorStore,
    edge: EdgeStore,
    outbox: PgOutbox,
    events: Events,
    opened: list[HybridStore],
    new_record: Records,
) -> None:
    secondary = Switch(edge)
    secondary.fail_after_write = True
    hybrid = await open_hybrid(
        opened,
        HybridStore(
            pg, secondary, HybridPolicy(WriteMode.ASYNC_BOTH), outbox=outbox,
            shared_transaction=True,
            on_event=lambda kind, fields: events.append((kind, fields)), drain_interval=0.01,
        ),
    )  # fmt: skip
    rec = new_record("alice", version=3)

    await hybrid.upsert([rec])

    async def drained() -> bool:
        return await hybrid.outbox_size() == 0

    await eventually(drained, "the entry is applied again and removed")
    retries = [f for kind, f in events if kind == "outbox_retry"]
    applied = [f for kind, f in events if kind == "outbox_applied"]
    assert [f["attempts"] for f in retries] == [1]
    assert [f["attempts"] for f in applied] == [2]
    got = (await edge.get("alice", [rec.memory.id]))[rec.memory.id]
    assert got.memory == rec.memory
    assert await edge.history("alice", rec.memory.id) == rec.history
