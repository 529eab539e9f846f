"""The embedded data folder: one owning process (a lock), and the free space it needs.

:class:`FolderLock` is an exclusive ``flock`` on ``<folder>/membank.lock``, which
holds the owner's pid. The server takes it before it opens anything in the folder
(the key database, the audit log, the store), so a second process on the same
folder stops with a message naming the owner, having touched nothing: not the
store's files, not the admin key. The lock goes with the process (a kill -9
releases it); the pid in the file is only for the message.

:class:`DiskGuard` watches the free space of the filesystem under the folder.
Qdrant Edge writes through memory maps into files it created sparse (32 MiB WAL
segments, 32 MiB payload pages, vector chunks), so when the filesystem fills, the
kernel cannot back a page and the process dies of SIGBUS, mid-write, and a restart
on that disk dies the same way. Measured here (tmpfs, Qdrant Edge 0.9): opening a
populated shard needed between 16 and 32 MiB free and used about 16 MiB of it; a
write uses about three times its records' size (WAL, payload, vectors, history).
So the guard refuses a write (507) while ``free - 3 x its size < reserve`` (default
128 MiB, ``storage.disk_reserve_bytes``), and the store is opened only with at least
:data:`OPEN_BYTES` free.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
from pathlib import Path

from membank_server.domain.errors import InsufficientStorage, StorageUnavailable
from membank_server.domain.model import DiskState

__all__ = ["DELETE_BYTES", "OPEN_BYTES", "DiskGuard", "FolderLock"]

_log = logging.getLogger("membank.storage")
MiB = 1024 * 1024
#: Free space an Edge shard needs to open (measured: 16-32 MiB), with a margin.
OPEN_BYTES = 48 * MiB
#: How many bytes of disk a write takes per byte of its records (measured: about 3).
WRITE_FACTOR = 3
#: What a small write may take: a store refusing those is "not writable".
SMALL_WRITE = 1024 * 1024
#: Free space a delete needs (a WAL entry): deletes are how an operator frees space.
DELETE_BYTES = 16 * MiB


#: Locks this process holds, by lock file, with how many holders: a process may take
#: its own folder twice (``membank serve`` before the server starts, then the server).
_held: dict[Path, list[int]] = {}


class FolderLock:
    """An exclusive lock on a data folder for the life of this process (module docs)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = (folder / "membank.lock").absolute()
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise naming the process that has it.

        Raises:
            StorageUnavailable: another process owns the folder, or it cannot be made.
        """
        if self._fd is not None:
            return
        held = _held.get(self.path)
        if held is not None:
            held[1] += 1
            self._fd = held[0]
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        except OSError as exc:
            raise StorageUnavailable(f"cannot use the data folder {self.folder}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            owner = _read_pid(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise StorageUnavailable(
                    f"the data folder {self.folder} is in use by another membank process"
                    f"{f' (pid {owner})' if owner else ''}: one process owns a folder; "
                    "stop it first, or give this one its own folder"
                ) from exc
            raise StorageUnavailable(f"cannot lock the data folder {self.folder}: {exc}") from exc
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        _held[self.path] = [fd, 1]

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        held = _held[self.path]
        held[1] -= 1
        if held[1] == 0:
            del _held[self.path]
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _read_pid(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode().strip()
    except OSError:
        return ""


class DiskGuard:
    """Refuses writes that would take the folder's filesystem below its reserve."""

    def __init__(self, folder: Path, reserve: int) -> None:
        self.folder = folder
        self.reserve = reserve
        self._refusing = False

    def state(self) -> DiskState:
        target = self.folder
        while not target.exists() and target != target.parent:
            target = target.parent
        st = os.statvfs(target)
        # Writable while a small write still fits above the reserve.
        return DiskState(st.f_bavail * st.f_frsize, self.reserve + SMALL_WRITE)

    def check(self, size: int = 0, *, delete: bool = False) -> None:
        """Raise :class:`InsufficientStorage` unless a write of ``size`` bytes of records
        leaves the reserve free (a delete needs only :data:`DELETE_BYTES`); log when
        writes stop and start again."""
        state = self.state()
        need = DELETE_BYTES if delete else self.reserve + max(SMALL_WRITE, WRITE_FACTOR * size)
        if state.free < need:
            if not self._refusing:
                self._refusing = True
                _log.error(
                    "disk nearly full under %s: %d MiB free, %d MiB kept in reserve: "
                    "refusing writes until space is freed",
                    self.folder, state.free // MiB, self.reserve // MiB,
                )  # fmt: skip
            raise InsufficientStorage(
                f"the disk of the data folder is nearly full ({state.free // MiB} MiB free, "
                f"{need // MiB} MiB needed): writes are refused until space is freed; "
                "reads still work",
                {"free_bytes": state.free, "reserve_bytes": self.reserve},
            )
        if self._refusing:
            self._refusing = False
            _log.warning("disk space under %s recovered: writes accepted again", self.folder)

    def can_open(self) -> bool:
        return self.state().free >= OPEN_BYTES
