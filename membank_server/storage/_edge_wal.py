"""Put Qdrant Edge's write-ahead log on the device without flushing its segments.

What Qdrant Edge 0.9 does (measured: strace, ``/proc/self/smaps`` and kill -9 trials;
the figures are in the README, "Durability of the embedded store"): ``update()``
appends the operation to the WAL, a memory-mapped file under ``<shard>/wal/``
(``open-N`` segments, renamed ``closed-N`` when full), and applies it to the segments
in memory; it issues no ``fsync``, ``fdatasync`` or ``msync``. The appended pages
are in the kernel's page cache, so they survive the process being killed (kill -9,
a panic, the OOM killer): the next ``EdgeShard.load`` replays the WAL past what the
segments persisted. They do not survive the machine losing power or the kernel
crashing until something writes them back. ``flush()`` makes everything durable,
the WAL and every segment (about ten ``fsync`` and twenty ``msync`` calls: 4-7 ms
idle on this box, tens of ms busy).

:class:`WalSync` closes the gap cheaply: ``fdatasync`` on the WAL files that may
hold new entries (sub-millisecond for one write), and ``fsync`` of the ``wal``
folder when its file names changed (a segment created or renamed). After
``update()`` and :meth:`WalSync.sync` a write is as durable as after ``flush()``:
against kill -9 and against a power loss, with the segments flushed later in the
background (``_edge_shard.ShardThreads``).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["WalSync"]


class WalSync:
    """Sync the WAL of the shard at ``path`` (called on its writer thread only).

    Args:
        path: The shard's folder.
    """

    def __init__(self, path: Path) -> None:
        self.folder = path / "wal"
        self._names: frozenset[str] = frozenset()

    def sync(self) -> None:
        names = frozenset(os.listdir(self.folder))
        # Closed segments were synced while open, unless they are new since the last
        # call (a segment filled and renamed within one group).
        for name in names:
            if name.startswith("open-") or (name.startswith("closed-") and name not in self._names):
                _sync_file(self.folder / name, directory=False)
        if names != self._names:
            _sync_file(self.folder, directory=True)
            self._names = names


def _sync_file(path: Path, *, directory: bool) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    except FileNotFoundError:
        return  # a closed segment the WAL dropped after a flush: nothing left to sync
    try:
        if directory:
            os.fsync(fd)
        else:
            os.fdatasync(fd)
    finally:
        os.close(fd)
