"""Qdrant collections written before history moved out of the payload open and read right."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import qdrant_edge as qe
from qdrant_client import AsyncQdrantClient, models

from membank_server.domain.model import MemoryRecord
from membank_server.storage._payload import BYTES, HISTORY, record_to_payload
from membank_server.storage.edge import EdgeStore
from membank_server.storage.qdrant import QdrantStore

Records = Callable[..., MemoryRecord]


def _old_payload(r: MemoryRecord) -> dict[str, object]:
    """A payload as earlier versions wrote it: history inside, no size."""
    payload = record_to_payload(r)
    del payload[BYTES]
    payload[HISTORY] = json.dumps(
        [
            {
                "event": h.event.value,
                "version": h.version,
                "content": h.content,
                "metadata": dict(h.metadata),
                "at": h.at.isoformat(),
            }
            for h in r.history
        ]
    )
    return payload


async def test_edge_moves_payload_history_out_at_open(
    tmp_path: Path, new_record: Records, dim: int
) -> None:
    recs = [new_record("alice", content=f"old {i}", version=3) for i in range(7)]
    store = EdgeStore(tmp_path / "shard", dimension=dim)
    await store.start()
    await store.aclose()
    shard = qe.EdgeShard.load(str(tmp_path / "shard"))
    points = [qe.Point(str(r.memory.id), list(r.vector), _old_payload(r)) for r in recs]
    shard.update(qe.UpdateOperation.upsert_points(points))
    shard.flush()
    shard.close()

    reopened = EdgeStore(tmp_path / "shard", dimension=dim)
    await reopened.start()
    try:
        for r in recs:
            assert await reopened.history("alice", r.memory.id) == r.history
        got = await reopened.get("alice", [r.memory.id for r in recs])
        assert {i: g.memory for i, g in got.items()} == {r.memory.id: r.memory for r in recs}
        assert (await reopened.usage("alice")).memories == 7
    finally:
        await reopened.aclose()
    raw = qe.EdgeShard.load(str(tmp_path / "shard"))
    try:
        stored = raw.retrieve([str(r.memory.id) for r in recs], True, False)
        assert all(HISTORY not in p.payload and BYTES in p.payload for p in stored)
    finally:
        raw.close()


async def test_qdrant_moves_payload_history_out_at_start(
    tmp_path: Path, new_record: Records, dim: int
) -> None:
    recs = [new_record("bob", content=f"old {i}", version=2) for i in range(5)]
    client = AsyncQdrantClient(path=str(tmp_path / "q"))
    await client.create_collection(
        "memories", vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE)
    )
    await client.upsert(
        "memories",
        points=[
            models.PointStruct(id=str(r.memory.id), vector=list(r.vector), payload=_old_payload(r))
            for r in recs
        ],
    )
    await client.close()

    store = QdrantStore(collection="memories", dimension=dim, path=str(tmp_path / "q"))
    await store.start()
    try:
        for r in recs:
            assert await store.history("bob", r.memory.id) == r.history
        assert (await store.usage("bob")).memories == 5
    finally:
        await store.aclose()
