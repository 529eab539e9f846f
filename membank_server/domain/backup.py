"""What the backup layer hands around: a stored file's receipt, a backup's summary,
and the port of where backups are kept (re-exported by ``domain.ports``)."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

__all__ = ["BackupInfo", "BackupStatus", "BackupTarget", "StoredFile"]


@dataclass(frozen=True, slots=True)
class StoredFile:
    """What a backup target wrote: the file's name, its size and the SHA-256 of its bytes."""

    name: str
    size: int
    sha256: str


class BackupStatus(StrEnum):
    #: The manifest is there and parses: every part was written before it.
    COMPLETE = "complete"
    #: Parts without a manifest: a backup that failed, was killed, or is still running.
    INCOMPLETE = "incomplete"
    #: A manifest that cannot be read or is not a membank backup manifest.
    CORRUPT = "corrupt"


@dataclass(frozen=True, slots=True)
class BackupInfo:
    """One backup as a catalog lists it.

    ``created_at`` comes from the manifest, or from the backup id (which begins with
    its UTC start time) when there is no readable manifest. ``kind``, ``parent``,
    ``stored_bytes``, ``memories`` and ``users`` are None without a readable manifest.
    """

    id: str
    created_at: datetime
    status: BackupStatus
    kind: str | None = None
    parent: str | None = None
    stored_bytes: int | None = None
    memories: int | None = None
    users: int | None = None

    @property
    def complete(self) -> bool:
        return self.status is BackupStatus.COMPLETE


class BackupTarget(Protocol):
    """Where backups are kept (a folder, an S3 bucket prefix): files by name.

    A name is a relative path of ``/``-separated segments of letters, digits, ``.``,
    ``_`` and ``-`` (no empty, ``.`` or ``..`` segment), such as
    ``20260101T020000Z-1a2b3c4d/manifest.json``; any other raises ``InvalidInput``.

    Writes are whole or nothing. A file is visible (to ``get``, ``list``, ``exists``)
    only once ``put`` has returned; a ``put`` that fails, whether the chunk iterator
    raised, the target failed or the task was cancelled, leaves the name as it was
    (absent, or the previous file) and aborts its partial write (a temporary file, an
    S3 multipart upload) before the error propagates. When even that abort cannot reach
    the target (it was killed, the network is gone), the partial write stays behind
    hidden, never listed or readable, until :meth:`cleanup` removes it.

    Raises (every method):
        BackupTargetUnavailable: the target cannot answer now (connection, timeout, disk).
        BackupError: the target refused (access denied, no such bucket).
    """

    @property
    def url(self) -> str:
        """Where this target writes, for messages and manifests; never a credential."""
        ...

    async def put(self, name: str, chunks: AsyncIterable[bytes]) -> StoredFile:
        """Write the file ``name`` from ``chunks``, streaming: memory stays bounded by the
        target's buffer (a chunk, an S3 part), never the file's size. Replaces a file of
        that name once complete. Returns the size and SHA-256 of the bytes written."""
        ...

    def get(self, name: str) -> AsyncIterator[bytes]:
        """The file's bytes in chunks, streaming.

        Raises:
            BackupNotFound: there is no such file (when iteration starts).
        """
        ...

    async def list(self, prefix: str = "") -> list[str]:
        """Names of the complete files whose name starts with ``prefix``, sorted."""
        ...

    async def exists(self, name: str) -> bool: ...

    async def delete(self, name: str) -> None:
        """Remove a file; a missing one is not an error."""
        ...

    async def cleanup(self, older_than: float = 86_400.0) -> int:
        """Remove the leftovers of interrupted writes started more than ``older_than``
        seconds ago (younger ones may belong to a write still running); returns how many."""
        ...

    async def aclose(self) -> None: ...
