"""Writing one backup: the sections in order, the manifest last (see ``BackupService``).

``pg_dump`` first (it reads the snapshot the memories are read from, which must be
exported while that transaction is open), then ``memories`` streamed page by page,
the ``index`` of what was read, for an incremental backup ``erased``, then keys,
teams, the audit log and the counts, and last the manifest with per-user counts and
what the backup found on the way (the data keys sealing its values, warnings).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace
from typing import Any

from membank_server.domain.backup_ports import BackupKind, BackupManifest, BackupSource
from membank_server.domain.errors import BackupError, BackupNotFound
from membank_server.domain.model import MemoryRecord
from membank_server.domain.ports import BackupArchive, MemoryStore, Snapshots
from membank_server.services._backup_extras import BackupExtras, write_extras
from membank_server.services._backup_index import (
    IndexRow,
    ParentIndex,
    Scan,
    StoreIndex,
    prefetched,
)

__all__ = ["BackupProgress", "BackupReport", "Parent", "parent_index", "reading", "write_backup"]

#: The parent backup's id and index, for an incremental backup.
Parent = tuple[str, ParentIndex]


@dataclass
class BackupProgress:
    """What a progress callback hears: the phase, records read of about ``total``."""

    phase: str
    done: int = 0
    total: int | None = None
    stored_bytes: int = 0


@dataclass(frozen=True)
class BackupReport:
    manifest: BackupManifest
    records: int
    users: int
    seconds: float
    warnings: tuple[str, ...] = ()

    def summary(self) -> dict[str, Any]:
        """What a client is told of a finished backup (the CLI, the server's stream)."""
        m = self.manifest
        return {
            "id": m.id,
            "kind": m.kind,
            "parent": m.parent,
            "records": self.records,
            "users": self.users,
            "parts": m.parts,
            "raw_bytes": m.raw_bytes,
            "stored_bytes": m.stored_bytes,
            "seconds": round(self.seconds, 3),
            "sections": dict(m.sections),
            "warnings": list(self.warnings),
        }


@dataclass
class _Counts:
    users: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, user: str, what: str, n: int = 1) -> None:
        per = self.users.setdefault(user, {})
        per[what] = per.get(what, 0) + n


async def _aiter(items: Iterable[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item


@contextlib.asynccontextmanager
async def reading(
    store: MemoryStore, snapshots: Snapshots | None
) -> AsyncIterator[tuple[Scan, str | None]]:
    """The scan a backup reads with, and the snapshot's token when there is one."""
    if snapshots is None:
        yield store.scan, None
        return
    async with snapshots.snapshot() as snap:
        yield snap.scan, snap.token


async def parent_index(archive: BackupArchive, source: BackupSource) -> Parent:
    """The newest complete backup on ``archive`` and its index.

    Raises:
        BackupNotFound: no complete backup to build on.
        BackupError: it holds vectors of another dimension.
    """
    complete = [b for b in await archive.list() if b.complete]
    if not complete:
        raise BackupNotFound(
            f"{archive.url} has no complete backup for an incremental one to build on: "
            "run a full backup first"
        )
    parent = complete[-1]
    reader = await archive.reader(parent.id)
    if reader.manifest.source.dimension != source.dimension:
        raise BackupError(
            f"backup {parent.id} holds {reader.manifest.source.dimension}-d vectors, this "
            f"store {source.dimension}-d: an incremental cannot build on it"
        )
    known = ParentIndex()
    async for row in reader.records("index", IndexRow):
        known.add_row(row)
    return parent.id, known


async def write_backup(
    archive: BackupArchive,
    reads: AbstractAsyncContextManager[tuple[Scan, str | None]],
    store: MemoryStore,
    source: BackupSource,
    extras: BackupExtras,
    parent: Parent | None,
    tell: Callable[[BackupProgress], None],
    *,
    page: int,
) -> BackupReport:
    """Write one backup of ``store`` read through ``reads`` (module docs)."""
    started = time.monotonic()
    total = (await store.info()).points
    counts, index, sealing, warnings = _Counts(), StoreIndex(), set[str](), list[str]()
    known = parent[1] if parent else None
    async with reads as (scan, token):
        snapped = replace(source, settings={**source.settings, "snapshot": token is not None})
        kind: BackupKind = "incremental" if parent else "full"
        async with archive.writer(snapped, kind, parent[0] if parent else None) as w:
            state = BackupProgress("memories", total=total)
            if extras.dump is not None:
                tell(replace(state, phase="pg_dump"))
                await w.add_blob("pg_dump", extras.dump.dump(token))

            async def memories() -> AsyncIterable[MemoryRecord]:
                async for records in prefetched(scan, page):
                    for r in records:
                        now = index.add(r)
                        if known is None or known.changed(r, now):
                            counts.add(r.memory.user_id, "memories")
                            if extras.sealed is not None:
                                sealing.update(extras.sealed.key_ids(r))
                            yield r
                    state.done += len(records)
                    state.stored_bytes = w.stored_bytes
                    tell(state)

            written = await w.add_records("memories", memories())
            tell(replace(state, phase="index"))
            await w.add_records("index", _aiter(index.rows()))
            if known is not None:
                gone = list(known.gone())
                for _, user in gone:
                    counts.add(user, "erased")
                await w.add_records("erased", _aiter(gone))
            tell(replace(state, phase="keys, audit"))
            warnings += await write_extras(w, extras, counts.add)
            found: dict[str, Any] = {}
            if sealing and extras.sealed is not None:
                found["field_encryption"] = extras.sealed.describe(sealing)
            if warnings:
                found["warnings"] = warnings
            tell(replace(state, phase="commit", stored_bytes=w.stored_bytes))
            manifest = await w.commit(counts.users, found)
    return BackupReport(
        manifest=manifest,
        records=written,
        users=len(counts.users),
        seconds=time.monotonic() - started,
        warnings=tuple(warnings),
    )
