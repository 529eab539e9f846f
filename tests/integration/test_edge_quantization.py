"""Int8 scalar quantization with rescoring on a real Qdrant Edge shard: recall@10 of the
quantized store against exact search, on the quality sets.

The memories and questions of both shipped suites (the conversations and the
60-question set) are embedded with the bundled ONNX embedder. They alone are about
3.5 MB of vectors, below the size at which Edge optimizes a segment (and only optimized
segments carry quantized vectors), so 6,000 filler memories of another user are added:
the suite's own vectors with a little noise, so the int8 ranges are calibrated on
vectors like the real ones. ``optimize()`` then builds one quantized segment holding
everything. Each question searches its user's memories (the plain scan of a small
tenant, as in production) and is scored against brute-force numpy over that user's
vectors: a hit counts when its exact score reaches the exact 10th best (ties).

The level documented in README "Quantization": recall@10 >= 0.99 of exact. The control
proves the quantized vectors are searched at all: without rescoring the scores are the
int8 approximations, not the exact ones.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID, uuid4

import numpy as np
import numpy.typing as npt
import pytest
import pytest_asyncio

from membank_cli.eval.quality import load_quality_set
from membank_server.domain.model import (
    Event,
    HistoryEvent,
    Memory,
    MemoryRecord,
    VectorQuery,
    content_hash,
)
from membank_server.embeddings.onnx import OnnxEmbedder
from membank_server.services.evaluation import EvalSuite
from membank_server.storage.edge import EdgeStore, VectorLayout
from tests.support.retrieval_suite import as_eval_suite, load_suite

__all__: list[str] = []

# The module's fixtures (one embedded corpus, one optimized shard) share its loop.
pytestmark = pytest.mark.asyncio(loop_scope="module")

_QUALITY = Path(__file__).resolve().parent / "quality_set.py"
_FILLER = 6_000
_DIM = 384
#: The level README "Quantization" documents.
_RECALL = 0.99
_Array = npt.NDArray[np.float32]


@dataclass(frozen=True)
class _Corpus:
    users: dict[str, list[UUID]]
    vectors: dict[UUID, _Array]
    questions: list[tuple[str, _Array]]
    records: list[MemoryRecord]


def _record(user: str, content: str, vector: Sequence[float]) -> MemoryRecord:
    at = datetime(2025, 1, 1, tzinfo=UTC)
    memory = Memory(
        id=uuid4(),
        user_id=user,
        content=content,
        metadata={},
        created_at=at,
        updated_at=at,
        version=1,
        content_hash=content_hash(content),
    )
    event = HistoryEvent(Event.ADD, 1, content, {}, at)
    return MemoryRecord(memory=memory, vector=list(vector), history=(event,))


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def corpus() -> _Corpus:
    suites: list[EvalSuite] = [as_eval_suite(load_suite()), load_quality_set(_QUALITY)]
    memories = [(f"{s.name}/{m.user_id}", m.content) for s in suites for m in s.memories]
    asked = [(f"{s.name}/{q.user_id}", q.text) for s in suites for q in s.questions]
    embedder = OnnxEmbedder()
    await embedder.start()
    try:
        found = await embedder.embed([text for _, text in memories + asked])
    finally:
        await embedder.aclose()
    matrix = np.asarray(found, dtype=np.float32)
    records = [_record(u, t, v) for (u, t), v in zip(memories, found, strict=False)]
    rng = np.random.default_rng(14)
    base = matrix[: len(memories)]
    noisy = base[rng.integers(0, len(base), _FILLER)]
    noisy = noisy + 0.02 * rng.standard_normal(noisy.shape).astype(np.float32)
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    records += [_record("filler", f"filler {i}", v.tolist()) for i, v in enumerate(noisy)]
    users: dict[str, list[UUID]] = {}
    for r in records[: len(memories)]:
        users.setdefault(r.memory.user_id, []).append(r.memory.id)
    vectors = {r.memory.id: np.asarray(r.vector, dtype=np.float32) for r in records}
    questions = [(u, matrix[len(memories) + i]) for i, (u, _) in enumerate(asked)]
    return _Corpus(users, vectors, questions, records)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def folder(corpus: _Corpus, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A shard holding the corpus, optimized with scalar quantization (the default)."""
    path = tmp_path_factory.mktemp("quantized") / "shard"
    store = EdgeStore(path, dimension=_DIM, check_on_start=False)
    await store.start()
    try:
        for start in range(0, len(corpus.records), 1_000):
            await store.upsert(corpus.records[start : start + 1_000])
        assert await store.optimize()
        info = await store.info()
        assert info.extra["quantization"] == "scalar"
        # Indexed counts the lexical sparse vectors too.
        assert info.points == len(corpus.records) <= info.indexed_vectors
    finally:
        await store.aclose()
    assert list(path.rglob("quantized.data")), "optimize() built no quantized segment"
    return path


@pytest_asyncio.fixture(loop_scope="module")
async def opened(folder: Path, request: pytest.FixtureRequest) -> AsyncIterator[EdgeStore]:
    layout: VectorLayout = getattr(request, "param", VectorLayout())
    store = EdgeStore(folder, dimension=_DIM, check_on_start=False, vectors=layout)
    await store.start()
    try:
        yield store
    finally:
        await store.aclose()


async def _measure(store: EdgeStore, corpus: _Corpus) -> tuple[float, float]:
    """Mean recall@10 against exact, and the largest score error of a hit."""
    now = datetime.now(UTC)
    recalls, worst = [], 0.0
    for user, q in corpus.questions:
        ids = corpus.users[user]
        exact = np.stack([corpus.vectors[i] for i in ids]) @ q
        k = min(10, len(ids))
        tenth = float(np.sort(exact)[::-1][k - 1])
        score = dict(zip(ids, exact.tolist(), strict=True))
        hits = await store.search(VectorQuery(user, q.tolist(), limit=10, now=now))
        assert len(hits) == k
        recalls.append(sum(score[h.memory.id] >= tenth - 1e-6 for h in hits) / k)
        worst = max(worst, *(abs(h.score - score[h.memory.id]) for h in hits))
    return float(np.mean(recalls)), worst


async def test_quantized_recall_at_10_is_at_least_0_99_of_exact(
    opened: EdgeStore, corpus: _Corpus
) -> None:
    recall, worst = await _measure(opened, corpus)
    print(f"quantized + rescored: recall@10 {recall:.4f}, worst score error {worst:.1e}")
    assert recall >= _RECALL
    # Rescored: the scores are the float32 ones.
    assert worst < 1e-5


@pytest.mark.parametrize("opened", [VectorLayout(rescore=False)], indirect=True)
async def test_without_rescoring_the_int8_vectors_are_what_is_searched(
    opened: EdgeStore, corpus: _Corpus
) -> None:
    recall, worst = await _measure(opened, corpus)
    print(f"quantized, not rescored: recall@10 {recall:.4f}, worst score error {worst:.1e}")
    assert worst > 1e-4


async def test_quantization_changes_on_an_existing_folder_at_the_next_optimize(
    corpus: _Corpus, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "shard"
    records = corpus.records
    float32 = VectorLayout("none", on_disk=False)
    plain = EdgeStore(path, dimension=_DIM, check_on_start=False, vectors=float32)
    await plain.start()
    try:
        await plain.upsert(records)
        assert await plain.optimize()
    finally:
        await plain.aclose()
    assert not list(path.rglob("quantized.data"))

    store = EdgeStore(path, dimension=_DIM, check_on_start=False)
    with caplog.at_level(logging.WARNING, "membank.storage"):
        await store.start()
    try:
        assert "storage.edge.quantization is scalar" in caplog.text
        assert not list(path.rglob("quantized.data")), "applied before the optimize"
        assert await store.optimize()
        assert list(path.rglob("quantized.data"))
        assert (await store.info()).extra["quantization"] == "scalar"
        got = await store.get("filler", [r.memory.id for r in records])
        assert len(got) == _FILLER
        filler = records[-_FILLER:]
        assert all(got[r.memory.id].vector == pytest.approx(r.vector, abs=1e-6) for r in filler)
    finally:
        await store.aclose()
