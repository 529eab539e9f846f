"""HybridStore's read strategies and settings over in-memory stores (no I/O)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from membank_server.domain.errors import ConfigError, StorageUnavailable
from membank_server.domain.model import Memory, MemoryRecord, Page, SearchHit, VectorQuery
from membank_server.domain.storage import Consistency, HybridPolicy, ReadMode, WriteMode
from membank_server.storage.hybrid import HybridStore
from tests.unit.fakes import InMemoryStore

__all__: list[str] = []

_T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _record(user_id: str = "alice", vector: list[float] | None = None) -> MemoryRecord:
    memory_id = uuid4()
    return MemoryRecord(
        memory=Memory(memory_id, user_id, f"m {memory_id}", {}, _T0, _T0, 1, memory_id.hex),
        vector=vector or [1.0, 0.0],
    )


class _Stalled(InMemoryStore):
    """Answers nothing until ``gate`` opens; counts how often it was cancelled."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.cancelled = 0

    async def get(self, user_id: str, memory_ids: Any) -> dict[UUID, MemoryRecord]:
        try:
            await self.gate.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return await super().get(user_id, memory_ids)


class _Down(InMemoryStore):
    async def get(self, user_id: str, memory_ids: Any) -> dict[UUID, MemoryRecord]:
        raise StorageUnavailable("down (injected)")

    async def list_page(self, user_id: str, **kwargs: Any) -> Page:
        raise StorageUnavailable("down (injected)")


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        ({"write": "sometimes"}, "write must be one of"),
        ({"read": "random"}, "read must be one of"),
        (
            {"consistency": Consistency.STRONG, "write": WriteMode.ASYNC_BOTH},
            "strong needs storage.hybrid.write=both",
        ),
        ({"write": WriteMode.PRIMARY_ONLY, "read": ReadMode.FASTEST}, "needs writes to reach"),
    ],
)
def test_contradictory_policies_fail_at_construction(
    options: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(ConfigError, match=complaint):
        HybridPolicy(**options)


def test_a_store_without_its_outbox_or_transaction_fails_at_construction() -> None:
    with pytest.raises(ConfigError, match="needs an outbox"):
        HybridStore(InMemoryStore(), InMemoryStore(), HybridPolicy(WriteMode.ASYNC_BOTH))
    with pytest.raises(ConfigError, match="shared transaction"):
        HybridStore(InMemoryStore(), InMemoryStore(), shared_transaction=True)


@settings(max_examples=60, deadline=None)
@given(
    placement=st.lists(st.sampled_from(["primary", "secondary", "both"]), max_size=40),
    limit=st.integers(1, 9),
)
async def test_merged_pages_list_every_memory_once_in_id_order(
    placement: list[str], limit: int
) -> None:
    primary, secondary = InMemoryStore(), InMemoryStore()
    hybrid = HybridStore(primary, secondary, HybridPolicy(WriteMode.BOTH, ReadMode.BOTH))
    records = [_record() for _ in placement]
    for where, rec in zip(placement, records, strict=True):
        if where in ("primary", "both"):
            await primary.upsert([rec])
        if where in ("secondary", "both"):
            await secondary.upsert([rec])

    seen: list[UUID] = []
    cursor: str | None = None
    for _ in range(len(records) + 2):
        page = await hybrid.list_page("alice", now=_T0, limit=limit, cursor=cursor)
        assert len(page.items) <= limit
        seen.extend(m.id for m in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert cursor is None, "the cursor does not advance"
    assert seen == sorted(r.memory.id for r in records)


async def test_merged_search_keeps_each_ids_best_score_and_the_limit() -> None:
    primary, secondary = InMemoryStore(), InMemoryStore()
    hybrid = HybridStore(primary, secondary, HybridPolicy(WriteMode.BOTH, ReadMode.BOTH))
    shared = _record(vector=[0.2, 0.0])
    better = replace(shared, vector=[0.9, 0.0])
    others = [_record(vector=[0.1 * k, 0.0]) for k in range(1, 6)]
    await primary.upsert([shared, *others[:3]])
    await secondary.upsert([better, *others[2:]])

    hits = await hybrid.search(VectorQuery("alice", [1.0, 0.0], 3, _T0))

    assert [h.memory.id for h in hits] == [
        shared.memory.id,
        others[4].memory.id,
        others[3].memory.id,
    ]
    assert hits[0].score == pytest.approx(0.9)
    assert all(isinstance(h, SearchHit) for h in hits)


async def test_merged_get_prefers_the_primarys_copy() -> None:
    primary, secondary = InMemoryStore(), InMemoryStore()
    hybrid = HybridStore(primary, secondary, HybridPolicy(WriteMode.BOTH, ReadMode.BOTH))
    rec = _record()
    newer = replace(rec, memory=replace(rec.memory, version=2, content="newer"))
    only_secondary = _record()
    await primary.upsert([newer])
    await secondary.upsert([rec, only_secondary])

    got = await hybrid.get("alice", [rec.memory.id, only_secondary.memory.id])

    assert got[rec.memory.id].memory.content == "newer"
    assert only_secondary.memory.id in got


async def test_reading_both_serves_what_one_store_has_when_the_other_is_down() -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    secondary = InMemoryStore()
    hybrid = HybridStore(
        _Down(),
        secondary,
        HybridPolicy(WriteMode.BOTH, ReadMode.BOTH),
        on_event=lambda k, f: events.append((k, f)),
    )
    rec = _record()
    await secondary.upsert([rec])

    assert list(await hybrid.get("alice", [rec.memory.id])) == [rec.memory.id]
    assert events == [
        (
            "fallback",
            {
                "op": "get",
                "failed": "primary",
                "served_by": "secondary",
                "backend": "memory",
                "error": "down (injected)",
            },
        )
    ]


async def test_fastest_does_not_wait_for_a_stalled_store() -> None:
    stalled, quick = _Stalled(), InMemoryStore()
    hybrid = HybridStore(stalled, quick, HybridPolicy(WriteMode.BOTH, ReadMode.FASTEST))
    rec = _record()
    await quick.upsert([rec])

    got = await asyncio.wait_for(hybrid.get("alice", [rec.memory.id]), timeout=30)

    assert list(got) == [rec.memory.id]
    await hybrid.aclose()
    assert stalled.cancelled == 1


async def test_fastest_raises_only_when_both_fail() -> None:
    hybrid = HybridStore(_Down(), _Down(), HybridPolicy(WriteMode.BOTH, ReadMode.FASTEST))

    with pytest.raises(StorageUnavailable, match=r"primary: down .*secondary: down"):
        await hybrid.get("alice", [uuid4()])


async def test_both_writes_go_to_both_stores_in_order() -> None:
    primary, secondary = InMemoryStore(), InMemoryStore()
    hybrid = HybridStore(primary, secondary, HybridPolicy(WriteMode.BOTH))
    rec = _record()
    expired = replace(rec, memory=replace(rec.memory, expires_at=_T0))

    await hybrid.upsert([expired])
    assert await hybrid.purge_expired(_T0 + timedelta(seconds=1)) == 1

    assert primary.records == secondary.records == {}
    assert (primary.upserts, secondary.upserts) == (1, 1)
