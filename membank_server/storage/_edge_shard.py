"""A Qdrant Edge shard behind its own threads, with writes committed in groups.

Qdrant Edge is synchronous and holds the GIL while it works, so every call runs
on a private thread and never on the event loop: reads on a small pool, writes on
one writer thread. The writer commits them in groups: each group is applied, its
history committed and the shard's write-ahead log synced once (``_edge_wal``), and
only then are its callers answered, so a 2xx means the write is on the device
(it survives kill -9 and a power loss) without paying a flush per request. The
segments themselves are flushed in the background, at most every
``flush_interval`` seconds while there are writes, between groups on the same
writer thread; the WAL covers what they have not persisted yet. An index build
(``_edge_build``) swaps the shard for a new generation on the writer thread, between
groups (:meth:`ShardThreads.swap`); while it runs, each group notes what it touched
in the build's journal, on the writer thread too, so the journal holds every write
applied after the copy in the order it was applied. A Rust panic
(damaged files) arrives as a ``BaseException`` and becomes a failed call, not the
end of the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import qdrant_edge as qe

from membank_server.domain.errors import (
    ConfigError,
    InsufficientStorage,
    MembankError,
    StorageUnavailable,
)
from membank_server.domain.model import CollectionInfo
from membank_server.storage._edge_ops import Op, apply_group, disk_full
from membank_server.storage._edge_reads import is_panic
from membank_server.storage._edge_vectors import VectorLayout, note_change, stored_quantization
from membank_server.storage._edge_wal import WalSync
from membank_server.storage._lexical import LEXICAL
from membank_server.storage._payload import INDEXED_KEYWORDS, INDEXED_NUMBERS
from membank_server.storage._sqlite_history import SqliteHistory

__all__ = ["DISTANCES", "ShardThreads", "Touched", "describe", "open_shard", "shard_config"]

_T = TypeVar("_T")
#: What a write touched, for a build's journal: a point id, or a filter it deleted by.
Touched = Any
_log = logging.getLogger("membank.storage")
DISTANCES = {"cosine": "Cosine", "dot": "Dot", "euclid": "Euclid"}


def shard_config(
    dimension: int,
    distance: str,
    m: int,
    ef_construction: int,
    full_scan_threshold: int,
    layout: VectorLayout | None = None,
    *,
    indexing_threshold: int | None = None,
) -> Any:
    layout = layout or VectorLayout()
    optimizers = (
        None
        if indexing_threshold is None
        else qe.EdgeOptimizersConfig(indexing_threshold=indexing_threshold)
    )
    return qe.EdgeConfig(
        vectors=layout.vector_params(dimension, getattr(qe.Distance, DISTANCES[distance])),
        sparse_vectors={LEXICAL: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
        hnsw_config=qe.HnswIndexConfig(
            m=m, ef_construct=ef_construction, full_scan_threshold=full_scan_threshold
        ),
        optimizers=optimizers,
    )


def describe(
    info: Any, path: Path, dimension: int, distance: str, shard: Path | None = None
) -> CollectionInfo:
    """The collection's description from the shard's ``info()`` (``shard``: the live
    shard's folder when it is a generation under ``path``)."""
    return CollectionInfo(
        backend="edge",
        name=path.name,
        dimension=dimension,
        distance=distance,
        points=int(info.points_count),
        indexed_vectors=int(info.indexed_vectors_count),
        segments=int(info.segments_count),
        extra={
            "path": str(path),
            "quantization": stored_quantization(shard or path),
            "payload_indexes": {
                k: str(v.data_type).rsplit(".", 1)[-1] for k, v in info.payload_schema.items()
            },
        },
    )


def open_shard(path: Path, config: Any, *, dimension: int, distance: str) -> Any:
    """Load the shard at ``path`` (its config checked against the segments on disk),
    or create it with the payload indexes membank filters on."""
    try:
        if (path / "edge_config.json").exists():
            note_change(path, config)
            return qe.EdgeShard.load(str(path), config)
        path.mkdir(parents=True, exist_ok=True)
        shard = qe.EdgeShard.create(str(path), config)
        shard.update(
            qe.UpdateOperation.create_field_index("user_id", qe.KeywordIndexParams(is_tenant=True))
        )
        for key in INDEXED_KEYWORDS:
            shard.update(qe.UpdateOperation.create_field_index(key, qe.PayloadSchemaType.Keyword))
        for key in INDEXED_NUMBERS:
            shard.update(qe.UpdateOperation.create_field_index(key, qe.PayloadSchemaType.Float))
        shard.flush()
        return shard
    except Exception as exc:
        text = str(exc)
        if "incompatible" in text.lower():
            raise ConfigError(
                f"the collection at {path} does not match storage settings "
                f"(dimension {dimension}, distance {distance}): {text}"
            ) from exc
        hint = " (is another membank process using this data folder?)" if "WAL" in text else ""
        raise StorageUnavailable(
            f"cannot open the Qdrant Edge shard at {path}: {text}{hint}"
        ) from exc


class ShardThreads:
    """The open shard and the threads that call it (see the module docs).

    Args:
        history: The history database, written in the same group as the shard.
        wal: Syncs the shard's WAL at the end of each group.
        read_threads: Threads for reads (Edge holds the GIL: more adds little).
        flush_interval: Seconds between background flushes of the segments (a longer
            interval flushes less often but replays a longer WAL after a crash).
    """

    def __init__(
        self,
        history: SqliteHistory,
        wal: WalSync,
        read_threads: int = 2,
        flush_interval: float = 1.0,
    ) -> None:
        self.history = history
        self.wal = wal
        self.flush_interval = flush_interval
        self._unflushed = False
        self._flusher: asyncio.Task[None] | None = None
        self._readers = ThreadPoolExecutor(read_threads, thread_name_prefix="edge-read")
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="edge-write")
        self._shard: Any = None
        self._pending: list[tuple[Op, Sequence[Touched], asyncio.Future[None]]] = []
        #: Set by an index build while it runs; read and written on the writer thread only.
        self.journal: list[Touched] | None = None
        #: Reads running on each open shard (by ``id``), so a retired one closes after them.
        self._reading: dict[int, int] = {}
        self._drained: dict[int, asyncio.Event] = {}
        self._committing: asyncio.Task[None] | None = None

    @property
    def is_open(self) -> bool:
        return self._shard is not None

    async def open(self, opener: Callable[[], Any]) -> None:
        """Open the shard on the writer thread (where every change to it happens)."""
        self._shard = await self.on_writer(opener)
        self._flusher = asyncio.create_task(self._flush_loop())

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            if not self._unflushed or self._shard is None:
                continue
            # Cleared before the flush is queued: a group applied after it is queued
            # sets it again, one applied before is covered (the writer runs in order).
            self._unflushed = False
            try:
                # The shard is looked up on the writer: a build may have swapped it.
                await self.on_writer(lambda: self.require().flush())
            except StorageUnavailable as exc:
                # The writes are safe in the WAL; the next round tries again.
                self._unflushed = True
                _log.error("background flush of the Qdrant Edge segments failed: %s", exc)

    def require(self) -> Any:
        if self._shard is None:
            raise StorageUnavailable("the Qdrant Edge store is not open")
        return self._shard

    async def _run(self, pool: ThreadPoolExecutor, fn: Callable[[], _T]) -> _T:
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, fn)
        except MembankError:
            raise
        except Exception as exc:
            raise StorageUnavailable(f"Qdrant Edge failed: {exc}") from exc
        except BaseException as exc:
            if is_panic(exc):
                raise StorageUnavailable(f"Qdrant Edge failed: {str(exc)[:300]}") from exc
            raise

    async def on_writer(self, fn: Callable[[], _T]) -> _T:
        """Run ``fn`` on the writer thread, between groups (open, optimize, close)."""
        return await self._run(self._writer, fn)

    async def read(self, fn: Callable[[Any], _T]) -> _T:
        """Run ``fn(shard)`` on a reader thread."""
        shard = self.require()
        key = id(shard)
        self._reading[key] = self._reading.get(key, 0) + 1
        try:
            return await self._run(self._readers, lambda: fn(shard))
        finally:
            self._reading[key] -= 1
            if not self._reading[key]:
                del self._reading[key]
                drained = self._drained.pop(key, None)
                if drained is not None:
                    drained.set()

    async def write(self, op: Op, touched: Sequence[Touched] = ()) -> None:
        """Queue a write and wait until the group that carries it is flushed.

        Args:
            op: The write, run on the writer thread.
            touched: The point ids it may change, or the filters it deletes by (for a
                build's journal: ``_edge_build``).
        """
        self.require()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((op, touched, future))
        if self._committing is None or self._committing.done():
            self._committing = asyncio.create_task(self._commit_loop())
        await future

    async def _commit_loop(self) -> None:
        while self._pending:
            group, self._pending = self._pending, []
            ops = [op for op, _, _ in group]
            touched = [t for _, ts, _ in group for t in ts]
            self.require()
            self._unflushed = True
            try:
                outcomes = await asyncio.get_running_loop().run_in_executor(
                    self._writer, self._apply, ops, touched
                )
            except Exception as exc:  # noqa: BLE001 - qdrant_edge raises bare Exception
                outcomes = [exc] * len(group)
            for (_, _, future), error in zip(group, outcomes, strict=True):
                if future.done():
                    continue
                if error is None:
                    future.set_result(None)
                elif isinstance(error, MembankError):
                    future.set_exception(error)
                else:
                    kind = InsufficientStorage if disk_full(error) else StorageUnavailable
                    failure = kind(f"Qdrant Edge write failed: {error}")
                    failure.__cause__ = error
                    future.set_exception(failure)

    def _apply(self, ops: list[Op], touched: list[Touched]) -> list[Exception | None]:
        # On the writer thread: the shard, the WAL and the journal are the ones current
        # when the group runs, not when it was queued (a build may swap them between).
        try:
            return apply_group(self.require(), self.history, self.wal, ops)
        finally:
            if self.journal is not None:
                # A failed write is noted too: replaying an untouched id copies nothing new.
                self.journal.extend(touched)

    def swap(self, shard: Any, wal: WalSync) -> Any:
        """Serve from ``shard`` from now on, its WAL synced by ``wal``; the shard it
        replaces (on the writer thread, between groups: see :meth:`retire`)."""
        old, self._shard, self.wal = self._shard, shard, wal
        return old

    async def retire(self, shard: Any) -> None:
        """Close a shard swapped out, once the reads that started on it are done."""
        if self._reading.get(id(shard)):
            drained = self._drained[id(shard)] = asyncio.Event()
            await drained.wait()
        await self.on_writer(shard.close)

    async def close_shard(self, *, flush: bool = True) -> None:
        """Wait for the last group, then close the shard (and the history database);
        the threads stay for a shard opened again."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        if self._committing is not None:
            await self._committing
        if self._shard is not None:
            shard, self._shard = self._shard, None
            await self.on_writer(lambda: (shard.flush() if flush else None, shard.close()))
        self.history.close()

    async def close(self) -> None:
        """Close the shard and stop the threads."""
        await self.close_shard()
        self._readers.shutdown(wait=True)
        self._writer.shutdown(wait=True)
