"""Concurrent searches by text share embedding runs, through the embedder the server
is built with (``bootstrap`` puts the batcher in front of it): counted at the
embedder port, not timed."""

from __future__ import annotations

import asyncio

import pytest

from membank_server.bootstrap._jobs import batched
from membank_server.config import load_settings
from membank_server.domain.telemetry import NullTelemetry
from membank_server.services.inputs import RecallQuery
from membank_server.services.memories import MemoryService
from tests.unit.fakes import FakeEmbedder, InMemoryStore


async def _eight_searches(batcher: str) -> FakeEmbedder:
    settings = load_settings(
        environ={"MEMBANK_JOBS__BATCHER__ENABLED": batcher, "MEMBANK_CACHE__ENABLED": "false"}
    )
    inner = FakeEmbedder()
    service = MemoryService(InMemoryStore(), batched(settings, inner, NullTelemetry()))
    queries = [RecallQuery(f"user-{i}", query=f"what did I eat on day {i}?") for i in range(8)]
    answers = await asyncio.gather(*(service.recall(q) for q in queries))
    assert [outcome for _, outcome in answers] == ["off"] * 8  # the cache is not what helps
    return inner


@pytest.mark.parametrize(("batcher", "runs"), [("true", 1), ("false", 8)])
async def test_eight_concurrent_text_searches_embed_in_fewer_runs(batcher: str, runs: int) -> None:
    inner = await _eight_searches(batcher)
    assert len(inner.calls) == runs
    assert sorted(t for call in inner.calls for t in call) == sorted(
        f"what did I eat on day {i}?" for i in range(8)
    )
