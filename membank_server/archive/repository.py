"""ArchiveRepository: the ``BackupArchive`` port over a target, its keys and the format.

It puts the archive's pieces behind the port the services use: the catalog, the
writer (memory records as :mod:`~membank_server.archive.records` lines, everything
else as msgspec encodes it) and the reader (checked whole before it streams).

Per-user counts: in a clear backup they are the manifest's ``users``, so ``jq`` reads
them; in an encrypted one user ids are tenant identities, so they go into a sealed
``users`` section and the manifest keeps only how many users there are.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from membank_server.archive.catalog import Catalog
from membank_server.archive.crypto import PartCipher
from membank_server.archive.manifest import Manifest, Source
from membank_server.archive.reader import ArchiveReader
from membank_server.archive.records import MemoryLine, from_line, to_line
from membank_server.archive.writer import ArchiveWriter, MiB
from membank_server.domain.backup import BackupInfo
from membank_server.domain.backup_ports import BackupKind, BackupManifest, BackupSource
from membank_server.domain.model import MemoryRecord
from membank_server.domain.ports import BackupTarget

__all__ = ["ArchiveRepository", "manifest_view"]

_USERS = "users"


def manifest_view(m: Manifest) -> BackupManifest:
    """The services' view of a manifest."""
    return BackupManifest(
        id=m.backup_id,
        created_at=m.created_at,
        finished_at=m.finished_at,
        kind=m.kind,
        parent=m.parent,
        source=BackupSource(
            backend=m.source.backend,
            dimension=m.source.dimension,
            embedder=m.source.embedder,
            settings=dict(m.source.settings),
        ),
        sections={
            name: (s.records if s.records is not None else s.raw_bytes)
            for name, s in m.sections.items()
        },
        parts=len(m.parts),
        raw_bytes=sum(p.raw_bytes for p in m.parts),
        stored_bytes=m.stored_bytes,
        encryption=m.encryption.scheme if m.encryption else None,
    )


async def _lines(records: AsyncIterable[Any]) -> AsyncIterator[Any]:
    async for record in records:
        yield to_line(record) if isinstance(record, MemoryRecord) else record


class _Writer:
    def __init__(self, writer: ArchiveWriter, sealed: bool) -> None:
        self._w, self._sealed = writer, sealed

    @property
    def backup_id(self) -> str:
        return self._w.backup_id

    @property
    def stored_bytes(self) -> int:
        return self._w.stored_bytes

    async def add_records(self, section: str, records: AsyncIterable[Any]) -> int:
        return await self._w.add_records(section, _lines(records))

    async def add_blob(self, section: str, chunks: AsyncIterable[bytes]) -> int:
        return await self._w.add_blob(section, chunks)

    async def commit(
        self, users: Mapping[str, Mapping[str, int]], settings: Mapping[str, Any] | None = None
    ) -> BackupManifest:
        if not self._sealed:
            return manifest_view(await self._w.commit(users, settings=settings))

        async def rows() -> AsyncIterator[Any]:
            for user, counts in sorted(users.items()):
                yield [user, dict(counts)]

        await self._w.add_records(_USERS, rows())
        return manifest_view(await self._w.commit(None, user_count=len(users), settings=settings))


class _Reader:
    def __init__(self, reader: ArchiveReader) -> None:
        self._r = reader
        self.manifest = manifest_view(reader.manifest)

    async def verify(self, progress: Callable[[int], None] | None = None) -> int:
        return (await self._r.verify(progress)).records

    async def records(self, section: str, type: Any) -> AsyncIterator[Any]:
        if section not in self._r.manifest.sections:
            return
        if type is MemoryRecord:
            async for line in self._r.records(section, MemoryLine):
                yield from_line(line)
        else:
            async for item in self._r.records(section, type):
                yield item

    def blob(self, section: str) -> AsyncIterator[bytes]:
        return self._r.blob(section)

    async def users(self) -> dict[str, dict[str, int]]:
        m = self._r.manifest
        if _USERS not in m.sections:
            return {u: dict(c) for u, c in m.users.items()}
        found: dict[str, dict[str, int]] = {}
        async for user, counts in self._r.records(_USERS, tuple[str, dict[str, int]]):
            found[user] = counts
        return found


class ArchiveRepository:
    """The backups on ``target``, sealed (and opened) with ``cipher``.

    Args:
        target: Where the backups are (a folder, an S3 prefix).
        cipher: Seals new backups and opens sealed ones; None writes clear backups
            (and cannot open sealed ones).
        part_size: Uncompressed bytes per part, about.
        zstd_level: zstd's level for new backups.
    """

    def __init__(
        self,
        target: BackupTarget,
        cipher: PartCipher | None = None,
        *,
        part_size: int = 64 * MiB,
        zstd_level: int = 3,
    ) -> None:
        self.target, self._catalog = target, Catalog(target)
        self._cipher = cipher
        self._part_size, self._level = part_size, zstd_level

    @property
    def url(self) -> str:
        return self.target.url

    async def list(self) -> builtins.list[BackupInfo]:
        return await self._catalog.list()

    @asynccontextmanager
    async def writer(
        self, source: BackupSource, kind: BackupKind, parent: str | None
    ) -> AsyncIterator[_Writer]:
        made = Source(
            backend=source.backend,
            dimension=source.dimension,
            embedder=source.embedder,
            settings=dict(source.settings),
        )
        async with ArchiveWriter(
            self.target,
            made,
            kind=kind,
            parent=parent,
            part_size=self._part_size,
            zstd_level=self._level,
            cipher=self._cipher,
        ) as w:
            yield _Writer(w, sealed=self._cipher is not None)

    async def manifest(self, backup_id: str) -> BackupManifest:
        return manifest_view(await self._catalog.manifest(backup_id))

    async def chain(self, backup_id: str) -> builtins.list[BackupManifest]:
        return [manifest_view(m) for m in await self._catalog.chain(backup_id)]

    async def reader(self, backup_id: str) -> _Reader:
        return _Reader(await ArchiveReader.open(self.target, backup_id, self._cipher))

    async def delete(self, backup_id: str) -> int:
        return await self._catalog.delete(backup_id)

    async def cleanup(self, older_than: float) -> int:
        return await self.target.cleanup(older_than)

    async def aclose(self) -> None:
        await self.target.aclose()
