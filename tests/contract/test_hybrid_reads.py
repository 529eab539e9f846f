"""HybridStore's read strategies with real stores, one of them failing or stalled.

Each store gets some records the other lacks, so an answer shows which store
gave it; :class:`~tests.contract.hybrid_switch.Switch` makes one fail or stall.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from uuid import UUID

import pytest

from membank_server.domain.errors import StorageUnavailable
from membank_server.domain.model import MemoryRecord, VectorQuery
from membank_server.domain.storage import HybridPolicy, ReadMode, WriteMode
from membank_server.storage.edge import EdgeStore
from membank_server.storage.hybrid import HybridStore
from membank_server.storage.pgvector import PgVectorStore
from tests.contract.hybrid_switch import Events, Switch, now, open_hybrid

__all__: list[str] = []

Records = Callable[..., MemoryRecord]
Unit = Callable[..., list[float]]


@pytest.fixture
async def opened() -> AsyncIterator[list[HybridStore]]:
    """Hybrids a test starts; closed at the end whatever happened."""
    stores: list[HybridStore] = []
    yield stores
    for store in stores:
        await store.aclose()


# -- reads -----------------------------------------------------------------------


async def test_primary_first_reads_fall_back_to_the_secondary(
    edge: EdgeStore,
    pg: PgVectorStore,
    events: Events,
    opened: list[HybridStore],
    new_record: Records,
    unit: Unit,
) -> None:
    primary, secondary = Switch(edge), Switch(pg)
    hybrid = await open_hybrid(
        opened,
        HybridStore(
            primary, secondary, HybridPolicy(WriteMode.BOTH, ReadMode.PRIMARY_FIRST),
            on_event=lambda kind, fields: events.append((kind, fields)),
        ),
    )  # fmt: skip
    shared = new_record("alice", unit(1), content="shared")
    await hybrid.upsert([shared])
    only_secondary = new_record("alice", unit(1), content="only in the secondary")
    await pg.upsert([only_secondary])
    ids = [shared.memory.id, only_secondary.memory.id]

    assert list(await hybrid.get("alice", ids)) == [shared.memory.id]
    answered_before = primary.answered
    primary.failing = True

    assert set(await hybrid.get("alice", ids)) == set(ids)
    assert set(await hybrid.owners(ids)) == set(ids)
    page = await hybrid.list_page("alice", now=now(), limit=10)
    assert {m.id for m in page.items} == set(ids)
    hits = await hybrid.search(VectorQuery("alice", unit(1), 10, now()))
    assert {h.memory.id for h in hits} == set(ids)
    assert await hybrid.count("alice") == 2
    pair = ("alice", only_secondary.memory.content_hash)
    assert list(await hybrid.find_by_hash([pair], now())) == [pair]

    fallbacks = [f for kind, f in events if kind == "fallback"]
    assert [f["op"] for f in fallbacks] == [
        "get", "look up owners", "list", "search", "count", "find by hash",
    ]  # fmt: skip
    assert {(f["failed"], f["served_by"]) for f in fallbacks} == {("primary", "secondary")}
    assert primary.answered == answered_before

    secondary.failing = True
    with pytest.raises(StorageUnavailable, match="neither store"):
        await hybrid.get("alice", ids)


async def test_fastest_returns_the_store_that_answers_first(
    edge: EdgeStore,
    pg: PgVectorStore,
    events: Events,
    opened: list[HybridStore],
    new_record: Records,
) -> None:
    primary, secondary = Switch(pg), Switch(edge)
    hybrid = await open_hybrid(
        opened,
        HybridStore(
            primary, secondary, HybridPolicy(WriteMode.BOTH, ReadMode.FASTEST),
            on_event=lambda kind, fields: events.append((kind, fields)),
        ),
    )  # fmt: skip
    in_primary, in_secondary = new_record("alice"), new_record("alice")
    await pg.upsert([in_primary])
    await edge.upsert([in_secondary])
    ids = [in_primary.memory.id, in_secondary.memory.id]

    async def answer() -> list[UUID]:
        # A bound, not a timing assertion: a race that waits for the stalled store hangs.
        return list(await asyncio.wait_for(hybrid.get("alice", ids), timeout=30))

    primary.gate = asyncio.Event()  # the primary stalls until the gate opens
    assert await answer() == [in_secondary.memory.id]

    primary.gate.set()
    secondary.gate = asyncio.Event()
    assert await answer() == [in_primary.memory.id]

    secondary.gate.set()
    primary.failing = True
    assert await answer() == [in_secondary.memory.id]
    assert [f["served_by"] for kind, f in events if kind == "fallback"] == ["secondary"]

    await hybrid.aclose()  # waits for the cancelled losers
    assert (primary.cancelled, secondary.cancelled) == (1, 1)


async def test_reading_both_merges_what_each_store_holds(
    edge: EdgeStore,
    pg: PgVectorStore,
    opened: list[HybridStore],
    new_record: Records,
    unit: Unit,
) -> None:
    hybrid = await open_hybrid(
        opened, HybridStore(pg, edge, HybridPolicy(WriteMode.BOTH, ReadMode.BOTH))
    )
    query = unit(axes={0: 1.0})
    near = new_record("alice", unit(axes={0: 1.0, 1: 0.1}))
    far_in_primary = new_record("alice", unit(axes={0: 1.0, 1: 2.0}), id=near.memory.id)
    recs = [new_record("alice") for _ in range(20)]
    await pg.upsert([far_in_primary, *recs[:12]])
    await edge.upsert([near, *recs[8:]])

    hits = await hybrid.search(VectorQuery("alice", query, 3, now()))
    assert hits[0].memory.id == near.memory.id
    assert hits[0].score == pytest.approx(1.0 / (1.01**0.5), abs=1e-4)
    assert len(hits) == 3
    assert len({h.memory.id for h in hits}) == 3

    seen: list[UUID] = []
    cursor: str | None = None
    while True:
        page = await hybrid.list_page("alice", now=now(), limit=6, cursor=cursor)
        seen.extend(m.id for m in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == sorted([near.memory.id, *(r.memory.id for r in recs)])
