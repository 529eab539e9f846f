"""What the backup layer hands around: a stored file's receipt and a backup's summary."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

__all__ = ["BackupInfo", "BackupStatus", "StoredFile"]


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
