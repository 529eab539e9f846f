"""What only the embedded store must do: survive a restart, own its folder, group commits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from membank_server.domain.errors import StorageUnavailable
from membank_server.domain.model import MemoryRecord, VectorQuery
from membank_server.storage.edge import EdgeStore

__all__: list[str] = []

Records = Callable[..., MemoryRecord]


async def test_data_survives_close_and_reopen(
    tmp_path: Path, new_record: Records, dim: int
) -> None:
    recs = [new_record("alice", content=f"fact {i}") for i in range(20)]
    first = EdgeStore(tmp_path / "shard", dimension=dim)
    await first.start()
    await first.upsert(recs)
    await first.aclose()

    second = EdgeStore(tmp_path / "shard", dimension=dim)
    await second.start()
    try:
        got = await second.get("alice", [r.memory.id for r in recs])
        assert {i: r.memory for i, r in got.items()} == {r.memory.id: r.memory for r in recs}
        assert await second.count("alice") == 20
        hits = await second.search(
            VectorQuery("alice", recs[3].vector, limit=1, now=datetime.now(UTC))
        )
        assert [h.memory.id for h in hits] == [recs[3].memory.id]
    finally:
        await second.aclose()


async def test_a_second_store_on_an_open_folder_is_refused(tmp_path: Path, dim: int) -> None:
    first = EdgeStore(tmp_path / "shard", dimension=dim)
    await first.start()
    try:
        second = EdgeStore(tmp_path / "shard", dimension=dim)
        with pytest.raises(StorageUnavailable, match=r"another .*process"):
            await second.start()
        await second.aclose()
    finally:
        await first.aclose()


async def test_concurrent_upserts_all_land(tmp_path: Path, new_record: Records, dim: int) -> None:
    recs = [new_record(f"user-{i % 5}") for i in range(50)]
    store = EdgeStore(tmp_path / "shard", dimension=dim)
    await store.start()
    await asyncio.gather(*(store.upsert([r]) for r in recs))
    assert await store.count() == 50
    await store.aclose()

    reopened = EdgeStore(tmp_path / "shard", dimension=dim)
    await reopened.start()
    try:
        for i in range(5):
            mine = [r.memory.id for r in recs if r.memory.user_id == f"user-{i}"]
            assert len(await reopened.get(f"user-{i}", mine)) == len(mine) == 10
        assert await reopened.count() == 50
    finally:
        await reopened.aclose()
