"""Building the embedded store's HNSW index in a child process, while it serves.

Qdrant Edge's ``optimize()`` holds the GIL for its whole run (about a minute at 100k
384-d points on 2 cores), so run in the server it would freeze it. An
:class:`IndexBuilder` builds on a copy instead, and swaps the copy in:

1. **Copy.** On the store's writer thread (no write group runs meanwhile): flush the
   live shard, copy its files into a new generation folder (``_edge_generations``),
   and start the journal: from then on every group notes the point ids it wrote and
   the filters it deleted by, on the writer thread, in the order it applied them.
2. **Build.** A child process (the same interpreter, at a lower priority) loads the
   copy, runs ``optimize()`` and closes it. The server goes on serving reads and
   writes from the live shard; only the child holds its own GIL.
3. **Catch up.** The built copy is synced to disk and loaded here; the journal is
   replayed into it in rounds on the writer thread, between write groups (each id's
   current state is read from the live shard: upserted with its vectors, dense and
   lexical, and payload, or deleted when gone; a filter is deleted by again).
4. **Switch.** One last step on the writer thread replays the rest of the journal,
   flushes the new shard (everything in it is on the device), replaces the pointer
   file atomically (``GENERATION``), and swaps the shard and its WAL under the write
   groups. Writes queued meanwhile wait for this step only: it is the build's pause.
   The old shard closes once the reads that started on it are done, and its folder
   is removed.

Why no acknowledged write is lost: a write acknowledged before the switch is in the
live shard's synced WAL, and (replayed) in the new shard, flushed before the pointer
names it; one acknowledged after is in the new shard's synced WAL. A crash before
the pointer is replaced leaves the old generation live and untouched (the copy is
removed when the store opens); after, the new one is complete. The history database
is not part of a generation: it is written in the same groups as ever. A delete
during the build is replayed as a delete, so it does not come back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from membank_server.domain.errors import InsufficientStorage, MembankError, StorageUnavailable
from membank_server.storage._edge_generations import (
    SHARD_ENTRIES,
    copy_shard,
    live_folder,
    next_folder,
    switch,
    sync_tree,
    tidy,
)
from membank_server.storage._edge_shard import ShardThreads, Touched
from membank_server.storage._edge_wal import WalSync
from membank_server.storage.folder import DiskGuard

__all__ = ["BuildReport", "IndexBuilder", "replay"]

_log = logging.getLogger("membank.storage")
#: Ids replayed per look-up in the live shard.
_CHUNK = 256
#: The journal entries left for the final step (the pause) at most, when writes allow.
_FINAL = 256
#: Catch-up rounds before the final step replays whatever is left.
_ROUNDS = 20
# The child dies with the server (PR_SET_PDEATHSIG): an orphan would go on writing
# into a folder the restarted server removes as a leftover.
_CHILD = """
import ctypes, json, os, signal, sys
ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
if os.getppid() != int(sys.argv[2]):
    sys.exit(3)
os.nice(10)
import qdrant_edge as qe
shard = qe.EdgeShard.load(sys.argv[1])
changed = shard.optimize()
shard.flush()
info = shard.info()
shard.close()
print(json.dumps({"changed": bool(changed), "points": info.points_count,
                  "indexed": info.indexed_vectors_count}))
"""


@dataclass(frozen=True)
class BuildReport:
    """What one build did (for logs and ``membank bench index``)."""

    changed: bool
    points: int
    indexed_vectors: int
    #: From the start to the switch, and each step (``copy``: writes wait meanwhile,
    #: ``pause``: the final step, writes wait meanwhile).
    build_seconds: float
    copy_seconds: float
    child_seconds: float
    load_seconds: float
    pause_seconds: float
    #: Journal entries replayed in all, and in the final step.
    replayed: int
    final_replayed: int


def replay(live: Any, new: Any, entries: list[Touched]) -> None:
    """Bring ``new`` up to date with ``live`` for what ``entries`` touched, in order."""
    ids: list[str] = []

    def copy() -> None:
        unique = list(dict.fromkeys(ids))
        ids.clear()
        for start in range(0, len(unique), _CHUNK):
            chunk = unique[start : start + _CHUNK]
            found = live.retrieve(chunk, True, True)
            if found:
                points = [qe.Point(id=r.id, vector=r.vector, payload=r.payload) for r in found]
                new.update(qe.UpdateOperation.upsert_points(points))
            present = {str(r.id) for r in found}
            gone: list[Any] = [i for i in chunk if i not in present]
            if gone:
                new.update(qe.UpdateOperation.delete_points(gone))

    for entry in entries:
        if isinstance(entry, qe.Filter):
            copy()
            new.update(qe.UpdateOperation.delete_points_by_filter(entry))
        else:
            ids.append(str(entry))
    copy()


@dataclass
class _Build:
    target: Path
    new: Any = None
    switched: bool = False
    replayed: int = 0


class IndexBuilder:
    """Builds the HNSW index of the shard behind ``threads`` out of process (module docs).

    Args:
        root: The collection folder (``_edge_generations``).
        threads: The store's shard threads.
        config: The shard's configuration (checked when the new generation loads).
        guard: The folder's disk guard (a build needs room for a copy of the shard).
        threshold: Start a build by itself when about this many points wait outside an
            HNSW index (0: only when asked).
        check_interval: Seconds between two looks at that count.
    """

    def __init__(
        self,
        root: Path,
        threads: ShardThreads,
        config: Any,
        guard: DiskGuard,
        threshold: int = 0,
        check_interval: float = 30.0,
    ) -> None:
        self.root = root
        self.threads = threads
        self.config = config
        self.guard = guard
        self.threshold = threshold
        self.check_interval = check_interval
        self.last: BuildReport | None = None
        self._task: asyncio.Task[BuildReport] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._baseline = 0

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Watch the unindexed count (when a threshold is set)."""
        if self.threshold > 0 and self._watch is None:
            self._watch = asyncio.create_task(self._watch_loop())

    async def build(self) -> BuildReport:
        """Build now, or wait for the build under way; a caller cancelled does not
        cancel the build."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._build())
        return await asyncio.shield(self._task)

    async def close(self) -> None:
        """Stop watching, and abandon a build under way (the live shard stays as it is)."""
        for task in (self._watch, self._task):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, MembankError):
                    await task
        self._watch = None

    async def _pending(self) -> int:
        info = await self.threads.read(lambda shard: shard.info())
        # indexed_vectors_count counts each point's lexical (sparse) vector too, which
        # is always indexed: an estimate, compared with its value after the last build.
        return max(0, 2 * int(info.points_count) - int(info.indexed_vectors_count))

    async def _watch_loop(self) -> None:
        while True:
            await asyncio.sleep(self.check_interval)
            if self.running:
                continue
            try:
                if await self._pending() - self._baseline < self.threshold:
                    continue
                report = await self.build()
                _log.info("index build: %s", report)
            except MembankError as exc:
                _log.error("background index build failed: %s", exc.message)
            with contextlib.suppress(MembankError):
                self._baseline = await self._pending()

    def _check_space(self, live: Path) -> None:
        size = 0
        for entry in SHARD_ENTRIES:
            for dirpath, _, files in os.walk(live / entry):
                for name in files:
                    with contextlib.suppress(FileNotFoundError):
                        size += os.stat(Path(dirpath) / name).st_blocks * 512
        free = self.guard.state().free
        # The copy, and the built segments beside the copied ones until they go.
        if free < self.guard.reserve + 2 * size:
            raise InsufficientStorage(
                f"not enough free disk to build the index ({free // 2**20} MiB free, "
                f"{(self.guard.reserve + 2 * size) // 2**20} MiB needed for a copy of the "
                "shard): free some space",
                {"free_bytes": free},
            )

    async def _build(self) -> BuildReport:
        threads, root = self.threads, self.root
        live = live_folder(root)
        self._check_space(live)
        state = _Build(next_folder(root))
        marks = [time.perf_counter()]
        try:
            await threads.on_writer(lambda: self._copy(live, state.target))
            marks.append(time.perf_counter())
            outcome = await self._child(state.target)
            marks.append(time.perf_counter())
            await asyncio.to_thread(sync_tree, state.target)
            state.new = await asyncio.to_thread(qe.EdgeShard.load, str(state.target), self.config)
            marks.append(time.perf_counter())
            for _ in range(_ROUNDS):
                journal = threads.journal or []
                if len(journal) - state.replayed <= _FINAL:
                    break
                await threads.on_writer(lambda: self._catch_up(state))
            # Most of the new shard's flush happens here, not in the pause (only the
            # writer thread changes it, and it is done with it until the switch).
            await asyncio.to_thread(state.new.flush)
            final_from = state.replayed
            marks.append(time.perf_counter())
            old = await asyncio.shield(threads.on_writer(lambda: self._switch(state)))
            marks.append(time.perf_counter())
        except BaseException:
            await asyncio.shield(threads.on_writer(lambda: self._abandon(state)))
            raise
        await threads.retire(old)
        removed = await asyncio.to_thread(tidy, root)
        self.last = BuildReport(
            changed=bool(outcome["changed"]),
            points=int(outcome["points"]),
            indexed_vectors=int(outcome["indexed"]),
            build_seconds=marks[5] - marks[0],
            copy_seconds=marks[1] - marks[0],
            child_seconds=marks[2] - marks[1],
            load_seconds=marks[3] - marks[2],
            pause_seconds=marks[5] - marks[4],
            replayed=state.replayed,
            final_replayed=state.replayed - final_from,
        )
        _log.info(
            "index build: generation %s live (removed %s): %s",
            state.target.name, ", ".join(removed), self.last,
        )  # fmt: skip
        return self.last

    # -- on the writer thread ---------------------------------------------

    def _copy(self, live: Path, target: Path) -> None:
        self.threads.require().flush()
        copy_shard(live, target)
        self.threads.journal = []

    def _catch_up(self, state: _Build) -> None:
        journal = self.threads.journal
        assert journal is not None  # set by _copy, cleared by _switch or _abandon
        end = len(journal)
        replay(self.threads.require(), state.new, journal[state.replayed : end])
        state.replayed = end

    def _switch(self, state: _Build) -> Any:
        self._catch_up(state)
        state.new.flush()
        try:
            switch(self.root, state.target)
        except BaseException:
            # The pointer decides: if it names the new generation (syncing its folder
            # failed after the rename), the new shard is the live one from now on.
            if live_folder(self.root) != state.target:
                raise
            _log.exception("the shard generation pointer was replaced but not synced")
        state.switched = True
        self.threads.journal = None
        return self.threads.swap(state.new, WalSync(state.target))

    def _abandon(self, state: _Build) -> None:
        if state.switched:
            return
        self.threads.journal = None
        if state.new is not None:
            state.new.close()
        shutil.rmtree(state.target, ignore_errors=True)

    # -- the child ---------------------------------------------------------

    async def _child(self, target: Path) -> dict[str, Any]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _CHILD,
            str(target),
            str(os.getpid()),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await proc.communicate()
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise
        if proc.returncode != 0:
            tail = err.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
            raise StorageUnavailable(
                f"the index build process failed (exit {proc.returncode}): {tail[0][:300]}"
            )
        result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
        return result
