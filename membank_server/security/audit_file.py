"""FileAuditLog: the append-only audit log as a JSON-lines file.

One msgspec-encoded object per line, ``at`` as RFC 3339 in UTC. The file is
opened ``O_WRONLY | O_APPEND | O_CREAT`` with mode 0600 (a looser mode found on
an existing file is tightened), its parent folders created 0700.

Appends use group commit: callers queue their line and wait; one writer task
takes everything queued, writes it with one ``os.write`` and one ``fsync`` on a
thread of its own, then wakes every waiter. An append is durable when it
returns, and a burst of N appends costs one fsync, not N.

Several processes (server workers, the CLI) may append to the same file: with
``O_APPEND`` each ``write`` lands at the end of the file, and on a local
filesystem Linux serialises writes to one file, so lines stay whole (not on NFS
or other network filesystems; give each instance its own file there). A write
torn by a full disk leaves a fragment: the next batch starts with a newline so
the fragment is a line of its own, and :meth:`FileAuditLog.read` skips lines
that do not decode, logging each one.

Nothing here changes or removes an entry; rotation and retention are the operator's.
"""

from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import msgspec

from membank_server.domain.errors import InvalidInput, StorageUnavailable
from membank_server.domain.security import AuditEntry

__all__ = ["FileAuditLog"]

_log = logging.getLogger("membank.audit")

_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)


class _Line(msgspec.Struct, kw_only=True):
    """One line of the file; unknown fields (from a newer server) are ignored."""

    at: Annotated[datetime, msgspec.Meta(tz=True)]
    request_id: str
    actor: str
    client: str
    action: str
    target: str
    result: str
    status: int
    details: dict[str, Any] = msgspec.field(default_factory=dict)


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(_Line)


def _aware(value: datetime | None, what: str) -> None:
    if value is not None and value.tzinfo is None:
        raise InvalidInput(f"the audit log needs a timezone-aware {what}")


def _encode(entry: AuditEntry) -> bytes:
    _aware(entry.at, "entry time")
    line = _Line(
        at=entry.at.astimezone(UTC),
        request_id=entry.request_id,
        actor=entry.actor,
        client=entry.client,
        action=entry.action,
        target=entry.target,
        result=entry.result,
        status=entry.status,
        details=dict(entry.details),
    )
    try:
        return _encoder.encode(line) + b"\n"
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"an audit entry's details are not JSON: {exc}") from exc


class FileAuditLog:
    """The :class:`~membank_server.domain.ports.AuditLog` port as a JSON-lines file.

    :meth:`read` works without :meth:`start` (the CLI reads that way, never
    creating the file); :meth:`append` needs it.

    Args:
        path: The log file; it and its parent folders are created when missing.
        max_batch: Most entries written (and fsynced) at once.
    """

    def __init__(self, path: Path, *, max_batch: int = 1024) -> None:
        self.path = Path(path)
        self._max_batch = max(1, max_batch)
        self._fd: int | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._writer: asyncio.Task[None] | None = None
        self._pending: list[tuple[bytes, asyncio.Future[None]]] = []
        self._wake: asyncio.Event | None = None
        self._closing = False
        #: A failed write may have left part of a line: start the next one on a new line.
        self._torn = False

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        """Open the file for appending (creating it 0600) and start the writer.

        Raises:
            StorageUnavailable: the file or its folder cannot be created or opened.
        """
        if self._fd is not None:
            return
        executor = ThreadPoolExecutor(1, thread_name_prefix="audit-write")
        try:
            fd = await asyncio.get_running_loop().run_in_executor(executor, self._open)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        self._fd, self._executor, self._closing = fd, executor, False
        self._wake = asyncio.Event()
        self._writer = asyncio.create_task(self._drain(), name="audit-writer")

    def _open(self) -> int:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, _FLAGS, 0o600)
        except OSError as exc:
            raise StorageUnavailable(f"cannot open the audit log {self.path}: {exc}") from exc
        try:
            if os.fstat(fd).st_mode & 0o077:
                os.fchmod(fd, 0o600)
            # The file's directory entry must be durable too, or a crash can lose it whole.
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            os.close(fd)
            raise StorageUnavailable(f"cannot open the audit log {self.path}: {exc}") from exc
        return fd

    async def aclose(self) -> None:
        """Write what is queued, then close the file."""
        if self._writer is None:
            return
        self._closing = True
        assert self._wake is not None
        self._wake.set()
        writer, self._writer = self._writer, None
        try:
            await writer
        finally:
            fd, executor, self._fd, self._executor = self._fd, self._executor, None, None
            assert fd is not None and executor is not None
            try:
                await asyncio.get_running_loop().run_in_executor(executor, os.close, fd)
            except OSError as exc:
                raise StorageUnavailable(f"cannot close the audit log {self.path}") from exc
            finally:
                executor.shutdown(wait=False)

    # -- writes ------------------------------------------------------------

    async def append(self, entry: AuditEntry) -> None:
        """Add one entry; it is written and fsynced when this returns.

        Raises:
            InvalidInput: the entry's time is naive or its details are not JSON.
            StorageUnavailable: the log is not open, or the write or fsync failed.
        """
        line = _encode(entry)
        if self._writer is None or self._wake is None or self._closing:
            raise StorageUnavailable(f"the audit log {self.path} is not open")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((line, waiter))
        self._wake.set()
        await waiter

    async def _drain(self) -> None:
        """The one writer: commit whatever is queued, batch after batch."""
        batch: list[tuple[bytes, asyncio.Future[None]]] = []
        assert self._wake is not None
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._pending:
                    batch = self._pending[: self._max_batch]
                    del self._pending[: len(batch)]
                    await self._commit(batch)
                    batch = []
                if self._closing:
                    return
        finally:
            # Cancelled with the loop (or a bug): no caller may wait forever.
            for _, waiter in batch + self._pending:
                if not waiter.done():
                    waiter.set_exception(
                        StorageUnavailable(f"the audit log {self.path} stopped writing")
                    )
            self._pending.clear()

    async def _commit(self, batch: list[tuple[bytes, asyncio.Future[None]]]) -> None:
        data = b"".join(line for line, _ in batch)
        assert self._executor is not None
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._write, data)
        except OSError as exc:
            for _, waiter in batch:
                if not waiter.done():
                    error = StorageUnavailable(f"cannot write the audit log {self.path}: {exc}")
                    error.__cause__ = exc
                    waiter.set_exception(error)
            return
        for _, waiter in batch:
            if not waiter.done():
                waiter.set_result(None)

    def _write(self, data: bytes) -> None:
        """Write all of ``data`` and fsync (on the writer thread)."""
        assert self._fd is not None
        view = memoryview(b"\n" + data if self._torn else data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
            # Part of a line is out: if the next write fails, it stays a fragment.
            self._torn = bool(view)
        os.fsync(self._fd)

    # -- reads -------------------------------------------------------------

    async def read(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> list[AuditEntry]:
        """Entries with ``since <= at < until`` in time order; with ``limit``, the last ones.

        Reads the whole file, safe while another process appends: a last line
        without its newline is still being written and is left out.

        Raises:
            InvalidInput: ``since`` or ``until`` is naive.
            StorageUnavailable: the file exists but cannot be read.
        """
        _aware(since, "since")
        _aware(until, "until")
        if limit is not None and limit <= 0:
            return []
        data = await asyncio.to_thread(self._read_bytes)
        entries: list[AuditEntry] = []
        lines = data.split(b"\n")
        for number, raw in enumerate(lines[:-1], start=1):  # lines[-1]: partial or empty
            if not raw.strip():
                continue
            try:
                line = _decoder.decode(raw)
            except msgspec.DecodeError as exc:
                _log.warning(
                    "audit log %s line %d is not an entry, skipped: %s", self.path, number, exc
                )
                continue
            if (since is None or line.at >= since) and (until is None or line.at < until):
                entries.append(AuditEntry(**msgspec.structs.asdict(line)))
        entries.sort(key=lambda e: e.at)  # stable: equal times keep file order
        return entries if limit is None else entries[-limit:]

    def _read_bytes(self) -> bytes:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return b""
        except OSError as exc:
            raise StorageUnavailable(f"cannot read the audit log {self.path}: {exc}") from exc
