"""LocalTarget: backups in a folder, written so a crash never leaves a half file in place.

Each file is written to a hidden temporary name beside its final one (``.NAME.RANDOM.tmp``:
a valid name never starts with a dot, so the two cannot meet), fsynced, renamed over
the final name and the folder fsynced, so after a crash or power loss the name holds
the old file or the whole new one. Files are made 0600 and folders 0700: a backup
holds every memory. Blocking file calls run in a worker thread, never on the loop.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from pathlib import Path
from typing import BinaryIO, TypeVar

from membank_server.archive._names import check_name, check_prefix
from membank_server.archive._threads import in_thread
from membank_server.domain.backup import StoredFile
from membank_server.domain.errors import BackupNotFound, BackupTargetUnavailable

__all__ = ["LocalTarget"]

_T = TypeVar("_T")
_READ_CHUNK = 1024 * 1024
#: Chunks are gathered up to this size before one write in the worker thread, so small
#: chunks do not cost a thread hop each.
_WRITE_BATCH = 1024 * 1024
_TMP_SUFFIX = ".tmp"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalTarget:
    """The ``BackupTarget`` port over a local folder.

    Args:
        root: The folder; made (0700) on the first write when missing.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().absolute()

    @property
    def url(self) -> str:
        return self.root.as_uri()

    def __repr__(self) -> str:
        return f"LocalTarget({str(self.root)!r})"

    async def _run(self, fn: Callable[..., _T], *args: object) -> _T:
        try:
            return await in_thread(fn, *args)
        except OSError as exc:
            where = exc.filename or self.root
            raise BackupTargetUnavailable(
                f"backup folder {self.root}: {exc.strerror or exc} ({where})"
            ) from exc

    def _mkdirs(self, folder: Path) -> None:
        """Make ``folder`` and its missing parents, fsyncing each parent that gained one."""
        missing: list[Path] = []
        while not folder.is_dir():
            missing.append(folder)
            folder = folder.parent
        for made in reversed(missing):
            made.mkdir(mode=0o700, exist_ok=True)
            _fsync_dir(made.parent)

    async def put(self, name: str, chunks: AsyncIterable[bytes]) -> StoredFile:
        path = self.root / check_name(name)
        await self._run(self._mkdirs, path.parent)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}{_TMP_SUFFIX}")
        fd = await self._run(os.open, tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        digest, size, batch = hashlib.sha256(), 0, bytearray()
        try:
            async for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                batch += chunk
                if len(batch) >= _WRITE_BATCH:
                    await self._run(_write_all, fd, bytes(batch))
                    batch.clear()
            await self._run(_write_all, fd, bytes(batch))
            await self._run(os.fsync, fd)
        except BaseException:
            # Also on cancellation: the half file must not outlive the put. Unlinking
            # inline (no thread hop) keeps the cleanup when the task is cancelled again.
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        try:
            await self._run(os.replace, tmp, path)
            await self._run(_fsync_dir, path.parent)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return StoredFile(name, size, digest.hexdigest())

    async def get(self, name: str) -> AsyncIterator[bytes]:
        fh = await self._run(_open_or_none, self.root / check_name(name))
        if fh is None:
            raise BackupNotFound(f"no file {name} in {self.url}", {"name": name})
        try:
            while chunk := await self._run(fh.read, _READ_CHUNK):
                yield chunk
        finally:
            fh.close()

    def _walk(self, prefix: str) -> list[str]:
        if not self.root.is_dir():
            return []
        names: list[str] = []
        for folder, dirs, files in os.walk(self.root):
            rel = Path(folder).relative_to(self.root).as_posix()
            base = "" if rel == "." else f"{rel}/"
            # Prune folders that cannot hold a match, so listing one backup is not a
            # walk of every backup.
            dirs[:] = [d for d in dirs if _may_match(f"{base}{d}/", prefix)]
            names.extend(
                f"{base}{f}"
                for f in files
                if not f.startswith(".") and f"{base}{f}".startswith(prefix)
            )
        return sorted(names)

    async def list(self, prefix: str = "") -> list[str]:
        return await self._run(self._walk, check_prefix(prefix))

    async def exists(self, name: str) -> bool:
        return await self._run((self.root / check_name(name)).is_file)

    def _delete(self, name: str) -> None:
        path = self.root / name
        path.unlink(missing_ok=True)
        folder = path.parent
        # Empty folders of deleted backups go too, so the root lists only live backups.
        while folder != self.root and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
            folder = folder.parent
        if folder.is_dir():
            _fsync_dir(folder)

    async def delete(self, name: str) -> None:
        await self._run(self._delete, check_name(name))

    def _cleanup(self, older_than: float) -> int:
        if not self.root.is_dir():
            return 0
        cutoff, removed = time.time() - older_than, 0
        for folder, _, files in os.walk(self.root):
            for f in files:
                path = Path(folder) / f
                if f.startswith(".") and f.endswith(_TMP_SUFFIX) and path.stat().st_mtime <= cutoff:
                    path.unlink(missing_ok=True)
                    removed += 1
        return removed

    async def cleanup(self, older_than: float = 86_400.0) -> int:
        return await self._run(self._cleanup, older_than)

    async def aclose(self) -> None:
        return None


def _open_or_none(path: Path) -> BinaryIO | None:
    try:
        return open(path, "rb")  # closed by the generator that reads it
    except FileNotFoundError:
        return None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _may_match(folder: str, prefix: str) -> bool:
    return folder.startswith(prefix) or prefix.startswith(folder)
