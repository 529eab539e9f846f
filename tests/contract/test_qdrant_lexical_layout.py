"""A Qdrant collection made before lexical search (one unnamed dense vector) keeps
working: writes and dense search as before, lexical search finds nothing, and the
start says how to index it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from qdrant_client import QdrantClient, models

from membank_server.domain.model import MemoryRecord, VectorQuery
from membank_server.storage.qdrant import QdrantStore

__all__: list[str] = []


async def test_an_old_collection_is_served_dense_only(
    tmp_path: Path,
    new_record: Callable[..., MemoryRecord],
    unit: Callable[..., list[float]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = str(tmp_path / "qdrant")
    client = QdrantClient(path=path)
    client.create_collection(
        "memories", vectors_config=models.VectorParams(size=8, distance=models.Distance.COSINE)
    )
    client.close()

    store = QdrantStore(collection="memories", dimension=8, path=path)
    with caplog.at_level(logging.WARNING, "membank.storage"):
        await store.start()
    assert "made before lexical search" in caplog.text and "reindex" in caplog.text
    rec = new_record("alice", unit(1), content="the Lofoten trip")
    await store.upsert([rec])
    now = datetime.now(UTC)
    hits = await store.search(VectorQuery("alice", unit(1), 3, now))
    assert [h.memory for h in hits] == [rec.memory]
    assert await store.search_lexical(VectorQuery("alice", [], 3, now, terms=("lofoten",))) == []
    assert (await store.get("alice", [rec.memory.id]))[rec.memory.id].memory == rec.memory
    await store.aclose()

    # A new collection has the lexical vector.
    fresh = QdrantStore(collection="fresh", dimension=8, path=path)
    await fresh.start()
    await fresh.upsert([rec])
    found = await fresh.search_lexical(VectorQuery("alice", [], 3, now, terms=("lofoten",)))
    assert [h.memory for h in found] == [rec.memory]
    await fresh.aclose()
