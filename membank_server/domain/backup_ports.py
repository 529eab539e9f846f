"""The ports a backup is made and restored through (re-exported by ``domain.ports``).

``BackupArchive`` is where backups are kept, as the services see it: a writer that
takes sections of records and commits a manifest last, a reader that checks a backup
whole before it streams it back, the catalog and the chains. The other ports are what
a backup reads besides the memories: one consistent snapshot of a store that has one
(PostgreSQL), the stored-and-sealed facts of field encryption, the durable Redis
counts, a native database dump; and where a failed scheduled backup is told.
"""

from __future__ import annotations

import builtins
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Collection,
    Mapping,
    Sequence,
)
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

from membank_server.domain.backup import BackupInfo
from membank_server.domain.model import MemoryRecord

__all__ = [
    "BackupAlerts",
    "BackupArchive",
    "BackupKind",
    "BackupManifest",
    "BackupReader",
    "BackupSource",
    "BackupWriter",
    "DatabaseDump",
    "DurableCounts",
    "SealedFields",
    "Snapshot",
    "Snapshots",
]

BackupKind = Literal["full", "incremental"]


@dataclass(frozen=True, slots=True)
class BackupSource:
    """Where a backup's data came from, and the settings a restore must match."""

    backend: str
    dimension: int | None = None
    embedder: str | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BackupManifest:
    """What the services read of a manifest (the archive's own is richer)."""

    id: str
    created_at: datetime
    finished_at: datetime
    kind: BackupKind
    parent: str | None
    source: BackupSource
    #: Records per records section; a blob section's uncompressed bytes.
    sections: Mapping[str, int]
    parts: int
    raw_bytes: int
    stored_bytes: int
    #: The sealing scheme of the parts, None for clear parts.
    encryption: str | None = None


class BackupWriter(Protocol):
    """One backup being written: sections in turn, then :meth:`commit`.

    Leaving the archive's ``writer`` context without a commit deletes what was written.
    """

    @property
    def backup_id(self) -> str: ...

    @property
    def stored_bytes(self) -> int:
        """Bytes put on the target so far."""
        ...

    async def add_records(self, section: str, records: AsyncIterable[Any]) -> int:
        """Write a section of records (``MemoryRecord`` or any JSON-able value), streaming;
        how many there were."""
        ...

    async def add_blob(self, section: str, chunks: AsyncIterable[bytes]) -> int:
        """Write opaque bytes as a section, streaming; how many."""
        ...

    async def commit(
        self, users: Mapping[str, Mapping[str, int]], settings: Mapping[str, Any] | None = None
    ) -> BackupManifest:
        """Write the per-user counts and the manifest, last: the backup is complete.
        ``settings`` join the source's (what the backup found while it was written)."""
        ...


class BackupReader(Protocol):
    """One backup, its keys checked; :meth:`verify` before trusting what it streams."""

    @property
    def manifest(self) -> BackupManifest: ...

    async def verify(self, progress: Callable[[int], None] | None = None) -> int:
        """Read every part whole and check it; the records read. ``progress`` hears the
        stored bytes of each part checked.

        Raises:
            BackupCorrupt: naming the first part that fails.
        """
        ...

    def records(self, section: str, type: Any) -> AsyncIterator[Any]:
        """The records of a section (absent: none), decoded as ``type``."""
        ...

    def blob(self, section: str) -> AsyncIterator[bytes]: ...

    async def users(self) -> dict[str, dict[str, int]]:
        """Per user id, records per section (from the manifest, or a sealed section)."""
        ...


class BackupArchive(Protocol):
    """The backups on one target, written and read with one set of keys.

    Raises (every method): ``BackupTargetUnavailable``, ``BackupError``; reads also
    ``BackupNotFound``, ``BackupCorrupt`` and ``BackupKeyError``.
    """

    @property
    def url(self) -> str:
        """Where, for messages; never a credential."""
        ...

    async def list(self) -> list[BackupInfo]:
        """Every backup on the target, oldest first, complete or not."""
        ...

    def writer(
        self, source: BackupSource, kind: BackupKind, parent: str | None
    ) -> AbstractAsyncContextManager[BackupWriter]: ...

    async def manifest(self, backup_id: str) -> BackupManifest: ...

    async def chain(self, backup_id: str) -> builtins.list[BackupManifest]:
        """The full backup ``backup_id`` builds on first, then each incremental, its own last."""
        ...

    async def reader(self, backup_id: str) -> BackupReader:
        """Open a backup for reading; its keys are checked here, before any part."""
        ...

    async def delete(self, backup_id: str) -> int: ...

    async def cleanup(self, older_than: float) -> int:
        """Remove leftovers of interrupted writes older than ``older_than`` seconds."""
        ...

    async def aclose(self) -> None: ...


class Snapshot(Protocol):
    """Every record of a store as of one instant, page by page."""

    @property
    def token(self) -> str | None:
        """A name other readers can share the snapshot by (``pg_export_snapshot``)."""
        ...

    async def scan(
        self, cursor: str | None, limit: int
    ) -> tuple[list[MemoryRecord], str | None]: ...


@runtime_checkable
class Snapshots(Protocol):
    """A store that reads from one consistent snapshot (PostgreSQL: REPEATABLE READ)."""

    def snapshot(self) -> AbstractAsyncContextManager[Snapshot]: ...


class SealedFields(Protocol):
    """What field encryption stores: which data keys seal a stored record, and whether
    a restore can open what another server sealed."""

    def key_ids(self, record: MemoryRecord) -> set[str]:
        """The ids of the data keys that seal this stored (sealed) record's fields."""
        ...

    def describe(self, key_ids: Collection[str]) -> dict[str, Any]:
        """What a backup records about the keys that sealed it: their ids with a check
        each, a check of the index key and the sealed metadata keys; never a key."""
        ...

    def missing(self, described: Mapping[str, Any]) -> list[str]:
        """Why this server cannot open records sealed as ``described``: empty when it can."""
        ...

    def indexed(self, record: MemoryRecord) -> MemoryRecord:
        """A stored (sealed) record with its lexical index terms: the keyed terms of its
        opened content. Stores keep the index, not the terms, so a record read back (a
        backup's) has none, and a store would otherwise index the sealed text."""
        ...


@runtime_checkable
class DurableCounts(Protocol):
    """Cache state that does not rebuild itself: the popular-query counts in Redis."""

    async def top(self, k: int) -> list[tuple[str, bytes, float]]: ...

    async def add_counts(self, counts: Sequence[tuple[str, bytes, float]]) -> None:
        """Add counts to the current window (a restore)."""
        ...


class DatabaseDump(Protocol):
    """A native dump of membank's PostgreSQL schema (``pg_dump -Fc``), streaming."""

    def dump(self, snapshot: str | None = None) -> AsyncIterator[bytes]:
        """The dump's bytes; ``snapshot`` makes it read an exported snapshot.

        Raises:
            BackupError: the tool is missing or failed (its message, no password).
        """
        ...


class BackupAlerts(Protocol):
    """Where a failed scheduled backup is reported (a webhook)."""

    async def failed(self, event: Mapping[str, Any]) -> None:
        """Report the failure; never raises (a failure to report is logged)."""
        ...
