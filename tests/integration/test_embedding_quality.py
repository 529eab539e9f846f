"""The real offline embedder: vector shape, stability, and retrieval quality.

The quality bars are fractions of a labelled set (``quality_set``), so one
borderline item cannot fail the suite, but a broken pipeline (wrong pooling,
no normalisation, shuffled order) fails it by a wide margin.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import pytest_asyncio

from membank_server.domain.errors import ConfigError, EmbedderUnavailable, InvalidInput
from membank_server.embeddings import OnnxEmbedder
from tests.integration.quality_set import (
    IMPLICIT_QA_PAIRS,
    PARAPHRASE_PAIRS,
    QA_PAIRS,
    UNRELATED,
)

__all__: list[str] = []

# The tests share one loaded model, so they share the loop it was started on.
_on_module_loop = pytest.mark.asyncio(loop_scope="module")

_Matrix = npt.NDArray[np.float64]

# all-MiniLM-L6-v2 itself (the fp32 reference gives the same ranks) puts 53 of
# these 60 answers first (88%): questions over one person's 60 memories, several
# of them near each other (work, shifts, salary). The bar sits under that so a
# real regression fails it, not one borderline item.
_MIN_TOP1_RATE = 0.85
# Memories that do not name their subject: all-MiniLM-L6-v2 (fp32 too) ranks
# about 72% of these first; the floor catches a broken pipeline, not the model.
_MIN_IMPLICIT_TOP1_RATE = 0.65
_MIN_PARAPHRASE_RATE = 0.90

# Mixed lengths, from one word to well past the 256-token window, so the
# length sort reorders them and several batches pad differently.
_MIXED = [
    "Hi.",
    "I am allergic to peanuts and carry an adrenaline pen everywhere I go.",
    " ".join(["My grandmother's recipe book has a page on every kind of bread."] * 60),
    "Dentist Tuesday.",
    "We keep the bikes in the shed behind the house, next to the lawnmower and the old paint.",
    "Rex is a golden retriever.",
    "The meeting with the landlord about the damp in the bathroom moved to Thursday at noon.",
    "Sarah.",
    "I have been learning Portuguese on my phone for about ten minutes every single morning.",
    "Coffee, black.",
    "Ferries always make me nauseous.",
] * 4


# Computed once from the fp32 weights of sentence-transformers/all-MiniLM-L6-v2
# (its model.safetensors, BERT forward pass, mean pooling, L2 norm); the int8
# model must stay within quantisation noise of them. Wrong pooling, a missing
# attention mask or a mangled tokenizer move these far more than the tolerance.
_REFERENCE_TEXTS = [
    "I am allergic to peanuts.",
    "What food should I avoid?",
    "My dog Rex is a golden retriever.",
    "The printer on the second floor is out of toner.",
    "Sarah and I got married in June 2015.",
]
_REFERENCE_SIMILARITY = [
    [1.0, 0.3755, 0.0462, -0.0019, 0.0515],
    [0.3755, 1.0, 0.0823, 0.0061, 0.0176],
    [0.0462, 0.0823, 1.0, -0.0026, 0.118],
    [-0.0019, 0.0061, -0.0026, 1.0, -0.0369],
    [0.0515, 0.0176, 0.118, -0.0369, 1.0],
]
_REFERENCE_FIRST_COMPONENTS = [0.009, 0.0011, 0.0281, 0.0386, 0.0028, 0.0266, 0.0332, 0.0929]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def embedder() -> AsyncIterator[OnnxEmbedder]:
    embedder = OnnxEmbedder(batch_size=8)
    await embedder.start()
    yield embedder
    await embedder.aclose()


async def _matrix(embedder: OnnxEmbedder, texts: list[str]) -> _Matrix:
    return np.asarray(await embedder.embed(texts), dtype=np.float64)


@_on_module_loop
async def test_matches_the_fp32_reference_pipeline(embedder: OnnxEmbedder) -> None:
    vectors = await _matrix(embedder, _REFERENCE_TEXTS)

    np.testing.assert_allclose(vectors @ vectors.T, _REFERENCE_SIMILARITY, atol=0.02)
    np.testing.assert_allclose(vectors[0, :8], _REFERENCE_FIRST_COMPONENTS, atol=0.01)


async def _top1(embedder: OnnxEmbedder, pairs: tuple[tuple[str, str], ...]) -> tuple[float, str]:
    """Rank every memory of the set for each question; the share ranked first, and a report."""
    questions = [question for question, _ in pairs]
    answers = [answer for _, answer in pairs]
    assert len(pairs) >= 48
    assert len(set(answers)) == len(answers)

    similarity = await _matrix(embedder, questions) @ (await _matrix(embedder, answers)).T

    misses = []
    ranks = []
    for index, question in enumerate(questions):
        ranking = np.argsort(-similarity[index])
        rank = int(np.where(ranking == index)[0][0]) + 1
        ranks.append(rank)
        if rank != 1:
            misses.append(
                f"  {question!r}: expected {answers[index]!r} at rank {rank} "
                f"({similarity[index, index]:.3f}), got {answers[ranking[0]]!r} "
                f"({similarity[index, ranking[0]]:.3f})"
            )
    rate = 1 - len(misses) / len(questions)
    top3 = sum(rank <= 3 for rank in ranks) / len(ranks)
    mrr = sum(1 / rank for rank in ranks) / len(ranks)
    report = (
        f"top-1 {rate:.1%} of {len(questions)} questions (top-3 {top3:.1%}, MRR {mrr:.3f}); "
        "misses:\n" + "\n".join(misses)
    )
    print(report)
    return rate, report


@_on_module_loop
async def test_questions_rank_their_memory_first(embedder: OnnxEmbedder) -> None:
    rate, report = await _top1(embedder, QA_PAIRS)
    assert rate >= _MIN_TOP1_RATE, report


@_on_module_loop
async def test_implicit_memories_stay_above_their_floor(embedder: OnnxEmbedder) -> None:
    rate, report = await _top1(embedder, IMPLICIT_QA_PAIRS)
    assert rate >= _MIN_IMPLICIT_TOP1_RATE, report


@_on_module_loop
async def test_paraphrases_are_closer_than_unrelated_statements(embedder: OnnxEmbedder) -> None:
    assert len(PARAPHRASE_PAIRS) >= 20
    firsts = await _matrix(embedder, [first for first, _ in PARAPHRASE_PAIRS])
    seconds = await _matrix(embedder, [second for _, second in PARAPHRASE_PAIRS])
    unrelated = await _matrix(embedder, list(UNRELATED))

    paired = (firsts * seconds).sum(axis=1)
    closest_unrelated = (firsts @ unrelated.T).max(axis=1)

    misses = [
        f"  {first!r} ~ {second!r}: {paired[i]:.3f} <= unrelated {closest_unrelated[i]:.3f}"
        for i, (first, second) in enumerate(PARAPHRASE_PAIRS)
        if paired[i] <= closest_unrelated[i]
    ]
    rate = 1 - len(misses) / len(PARAPHRASE_PAIRS)
    report = (
        f"paraphrase {rate:.1%} of {len(PARAPHRASE_PAIRS)} pairs; "
        f"mean pair {paired.mean():.3f}, mean closest unrelated {closest_unrelated.mean():.3f}; "
        "misses:\n" + "\n".join(misses)
    )
    print(report)
    assert rate >= _MIN_PARAPHRASE_RATE, report


@_on_module_loop
async def test_vectors_are_384_d_and_unit_length(embedder: OnnxEmbedder) -> None:
    vectors = await embedder.embed(_MIXED)

    assert embedder.dimension == 384
    assert all(len(vector) == 384 for vector in vectors)
    assert all(isinstance(x, float) for x in vectors[0])
    norms = np.linalg.norm(np.asarray(vectors), axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)


@_on_module_loop
async def test_embedding_is_deterministic(embedder: OnnxEmbedder) -> None:
    assert await embedder.embed(_MIXED) == await embedder.embed(_MIXED)


@_on_module_loop
async def test_batches_keep_order_and_match_single_texts(embedder: OnnxEmbedder) -> None:
    texts = list(dict.fromkeys(_MIXED))
    batched = await _matrix(embedder, texts)
    single = np.vstack([await _matrix(embedder, [text]) for text in texts])

    cosine = batched @ single.T

    # Each batched vector must be its own text's (order kept) and equal to
    # it up to the padding-dependent int8 quantisation noise.
    assert list(cosine.argmax(axis=1)) == list(range(len(texts)))
    assert cosine.diagonal().min() > 0.999


@_on_module_loop
async def test_empty_input_is_empty_output(embedder: OnnxEmbedder) -> None:
    assert await embedder.embed([]) == []


@pytest.mark.parametrize("texts", ["a bare string", ["fine", ""], ["fine", None]])
@_on_module_loop
async def test_bad_texts_are_invalid_input(embedder: OnnxEmbedder, texts: object) -> None:
    with pytest.raises(InvalidInput):
        await embedder.embed(texts)  # type: ignore[arg-type]


@_on_module_loop
async def test_embedding_runs_off_the_event_loop(embedder: OnnxEmbedder) -> None:
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0)

    texts = [f"{text} (variant {n})" for n, text in enumerate(_MIXED * 5)][:200]
    task = asyncio.create_task(ticker())
    try:
        vectors = await embedder.embed(texts)
        ticks_while_embedding = ticks
    finally:
        stop.set()
        await task

    assert len(vectors) == 200
    # A loop blocked by the work could tick at most once per await inside
    # embed (one per batch: 25 here); a free loop ticks without limit.
    assert ticks_while_embedding > 100


async def test_missing_model_file_is_unavailable(tmp_path: Path) -> None:
    embedder = OnnxEmbedder(model_path=tmp_path / "absent.onnx")

    with pytest.raises(EmbedderUnavailable, match="not found"):
        await embedder.start()
    with pytest.raises(EmbedderUnavailable, match="start"):
        await embedder.embed(["hello"])
    await embedder.aclose()


async def test_corrupt_model_file_is_unavailable(tmp_path: Path) -> None:
    corrupt = tmp_path / "model.onnx"
    corrupt.write_bytes(b"this is not a protobuf")
    embedder = OnnxEmbedder(model_path=corrupt)

    with pytest.raises(EmbedderUnavailable, match="cannot load"):
        await embedder.start()
    await embedder.aclose()


@pytest.mark.parametrize(
    "overrides", [{"batch_size": 0}, {"threads": 0}, {"max_length": 2}, {"max_length": 513}]
)
def test_bad_settings_are_config_errors(overrides: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        OnnxEmbedder(**overrides)


def test_model_name_names_the_truncation() -> None:
    assert OnnxEmbedder().model == "all-MiniLM-L6-v2-int8-onnx"
    assert OnnxEmbedder(max_length=128).model == "all-MiniLM-L6-v2-int8-onnx-len128"
