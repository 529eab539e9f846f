"""``MemoryStore.scan`` on every store of the contract suite, pgvector and hybrids included."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from uuid import UUID

import pytest

from membank_server.domain.model import MemoryRecord
from membank_server.domain.ports import MemoryStore

__all__: list[str] = []

Records = Callable[..., MemoryRecord]


async def test_scan_walks_every_record_of_every_user_once_in_id_order(
    store: MemoryStore, new_record: Records
) -> None:
    assert await store.scan() == ([], None)
    records = [new_record("alice" if i % 3 else "bob", version=1 + i % 2) for i in range(24)]
    records.append(new_record("carol", deleted_at=datetime.now(UTC), version=2))
    await store.upsert(records)
    by_id = {r.memory.id: r for r in records}

    seen: list[UUID] = []
    cursor: str | None = None
    for _ in range(10):
        page, cursor = await store.scan(cursor, limit=7)
        assert len(page) <= 7
        for rec in page:
            expected = by_id[rec.memory.id]
            assert rec.memory == expected.memory
            assert rec.history == expected.history
            assert rec.deleted_at == expected.deleted_at
            assert rec.vector == pytest.approx(expected.vector, abs=1e-5)
        seen.extend(r.memory.id for r in page)
        if cursor is None:
            break

    assert cursor is None, "the cursor does not advance"
    assert seen == sorted(by_id)
