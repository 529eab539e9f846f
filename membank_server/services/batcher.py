"""BatchingEmbedder: concurrent embedding calls run together, flushed on size or time.

Eight searches arriving together each need one query vector: alone, that is eight
model runs of one text; here they wait up to ``max_wait`` for each other and run as
one batch of eight. Workers of the job pipeline and synchronous writes do the same
with their texts. A batch goes when it holds ``max_texts`` texts, or ``max_wait``
after its first text came; at most ``concurrency`` batches of a lane run at once,
and while they do, the next batch keeps filling (so batches grow with the load).

Two lanes: calls of fewer than :data:`SMALL` texts (queries, single writes) and the
rest (batches, jobs). A query never waits behind a bulk batch in the batcher, and
the embedder underneath runs smaller calls first (``embeddings._pool``); a call of
``max_texts`` or more needs no company and goes straight through.

This sits above the embedder (the Embedder port) and keeps what the embedder does:
sorting by length, cutting batches by tokens, its thread pool. It works the same
over the ONNX model and a remote OpenAI-compatible provider (one request per batch).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from membank_server.domain.errors import EmbedderUnavailable, InvalidInput
from membank_server.domain.ports import Embedder
from membank_server.domain.telemetry import NullTelemetry, Telemetry

__all__ = ["SMALL", "BatchingEmbedder"]

#: Calls with fewer texts than this take the small lane.
SMALL = 8
_VISIBLE = re.compile(r"\S")


@dataclass
class _Call:
    texts: list[str]
    future: asyncio.Future[list[list[float]]]
    at: float = field(default_factory=time.perf_counter)


class _Lane:
    """Calls waiting to run together, and the task that runs them in batches."""

    def __init__(self, owner: BatchingEmbedder, name: str) -> None:
        self.owner, self.name = owner, name
        self.calls: list[_Call] = []
        self.texts = 0
        self.full = asyncio.Event()
        self.slots = asyncio.Semaphore(owner.concurrency)
        self.task: asyncio.Task[None] | None = None
        self.running: set[asyncio.Task[None]] = set()

    def add(self, call: _Call) -> None:
        self.calls.append(call)
        self.texts += len(call.texts)
        if self.texts >= self.owner.max_texts:
            self.full.set()
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._dispatch(), name=f"membank: batcher {self.name}")

    async def _dispatch(self) -> None:
        while self.calls:
            first = self.calls[0].at
            wait = self.owner.max_wait - (time.perf_counter() - first)
            if wait > 0 and not self.full.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.full.wait(), wait)
            await self.slots.acquire()  # the batch keeps filling while every slot is busy
            batch = self._take()
            task = asyncio.create_task(self._run(batch))
            self.running.add(task)
            task.add_done_callback(self.running.discard)

    def _take(self) -> list[_Call]:
        batch: list[_Call] = []
        taken = 0
        while self.calls and (
            not batch or taken + len(self.calls[0].texts) <= self.owner.max_texts
        ):
            call = self.calls.pop(0)
            batch.append(call)
            taken += len(call.texts)
        self.texts -= taken
        if self.texts < self.owner.max_texts:
            self.full.clear()
        return batch

    async def _run(self, batch: list[_Call]) -> None:
        try:
            texts = [t for call in batch for t in call.texts]
            self.owner.telemetry.embed_batch(
                self.name, len(texts), time.perf_counter() - batch[0].at
            )
            try:
                vectors = await self.owner.inner.embed(texts)
            except Exception as exc:  # noqa: BLE001 - every caller of the batch gets it
                for call in batch:
                    if not call.future.done():
                        call.future.set_exception(exc)
                return
            start = 0
            for call in batch:
                end = start + len(call.texts)
                if not call.future.done():
                    call.future.set_result(vectors[start:end])
                start = end
        finally:
            self.slots.release()

    async def drain(self) -> None:
        if self.task is not None:
            await asyncio.gather(self.task, return_exceptions=True)
        await asyncio.gather(*self.running, return_exceptions=True)


class BatchingEmbedder:
    """An :class:`~membank_server.domain.ports.Embedder` that batches its callers (module docs).

    Args:
        inner: The embedder that runs the batches.
        max_texts: Texts in one batch.
        max_wait: Seconds the first call of a batch waits for company.
        concurrency: Batches of one lane running at once.
        telemetry: Where batch sizes and waits go.
    """

    def __init__(
        self,
        inner: Embedder,
        *,
        max_texts: int = 256,
        max_wait: float = 0.004,
        concurrency: int = 2,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.inner = inner
        self.max_texts = max_texts
        self.max_wait = max_wait
        self.concurrency = concurrency
        self.telemetry = telemetry or NullTelemetry()
        self._lanes: dict[str, _Lane] = {}
        self._closed = False

    @property
    def model(self) -> str:
        return self.inner.model

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    async def start(self) -> None:
        self._closed = False
        await self.inner.start()

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed texts in order, together with whatever other calls come meanwhile.

        Raises:
            InvalidInput: a text is blank or not a string (checked here, so that one
                caller's bad text never fails the others' batch).
            EmbedderUnavailable: the embedder is closed or cannot answer.
        """
        items = _checked(texts)
        if not items:
            return []
        if self._closed:
            raise EmbedderUnavailable("the embedder is closed")
        if len(items) >= self.max_texts:
            return await self.inner.embed(items)
        name = "small" if len(items) < SMALL else "bulk"
        lane = self._lanes.get(name)
        if lane is None:
            lane = self._lanes[name] = _Lane(self, name)
        future: asyncio.Future[list[list[float]]] = asyncio.get_running_loop().create_future()
        lane.add(_Call(items, future))
        return await future

    async def aclose(self) -> None:
        """Run what is waiting, then close the embedder underneath."""
        self._closed = True
        for lane in list(self._lanes.values()):
            await lane.drain()
        self._lanes.clear()
        await self.inner.aclose()


def _checked(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise InvalidInput("texts must be a list of strings, not a single string")
    items = list(texts)
    for index, text in enumerate(items):
        if not isinstance(text, str) or not _VISIBLE.search(text):
            raise InvalidInput(f"text {index} is blank or not a string", {"index": index})
    return items
