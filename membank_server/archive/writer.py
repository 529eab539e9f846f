"""ArchiveWriter: a backup written as sections of parts, streaming, manifest last.

A section is either records (any value msgspec encodes: dicts, msgspec Structs,
dataclasses such as ``MemoryRecord``; one JSON object a line) or a blob (opaque bytes,
such as a ``pg_dump``). Records are pulled from the caller's iterator one at a time,
encoded, compressed and sealed in batches of about 1 MiB and handed to the target as
they come, so memory holds a batch and the target's buffer, never a part or a section.
A part is closed at the first record boundary at or past ``part_size`` raw bytes
(a blob part at most 1 MiB past it); the next record starts the next part.
Compression and sealing run in a worker thread, not on the event loop.

Nothing marks a backup complete but its manifest, put after the last part by
:meth:`ArchiveWriter.commit`. Leaving the ``async with`` block without committing, or
with an error, deletes the parts written so far; if the target cannot be reached even
for that, the parts stay as an incomplete backup that a prune removes.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal

import msgspec
import zstandard

from membank_server.archive.crypto import PartCipher, PartStream
from membank_server.archive.manifest import (
    MANIFEST,
    Compression,
    Manifest,
    PartInfo,
    SectionInfo,
    Source,
    encode_manifest,
    mac_input,
    new_backup_id,
)
from membank_server.domain.errors import BackupError, InvalidInput, MembankError
from membank_server.domain.ports import BackupTarget

__all__ = ["ArchiveWriter"]

MiB = 1024 * 1024
_SECTION = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
#: Raw bytes gathered before one compress call in the worker thread.
_BATCH = MiB
_END: Any = object()


async def _aiter(items: Iterable[Any] | AsyncIterable[Any]) -> AsyncIterator[Any]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


async def _pieces(chunks: Iterable[bytes] | AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """A blob's chunks cut to at most one batch, so a part ends near ``part_size``."""
    async for chunk in _aiter(chunks):
        for at in range(0, len(chunk), _BATCH):
            yield bytes(chunk[at : at + _BATCH])


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


class _Encoder:
    """zstd (one frame per part, with its checksum), then the cipher's sealer if any."""

    def __init__(self, level: int, sealer: PartStream | None) -> None:
        self._zstd = zstandard.ZstdCompressor(level=level, write_checksum=True).compressobj()
        self._sealer = sealer

    def update(self, raw: bytes) -> bytes:
        out = self._zstd.compress(raw)
        return self._sealer.update(out) if self._sealer else out

    def finish(self, raw: bytes) -> bytes:
        out = self._zstd.compress(raw) + self._zstd.flush()
        if self._sealer is None:
            return out
        return self._sealer.update(out) + self._sealer.finish()


class _Part:
    __slots__ = ("first", "next", "raw", "records")

    def __init__(self, first: Any) -> None:
        self.first, self.next = first, _END
        self.raw = self.records = 0


class ArchiveWriter:
    """Writes one backup to a target; use it as an async context manager.

    Args:
        target: Where the backup goes.
        source: The backend and settings the data came from (dimension, embedder id).
        kind: ``full``, or ``incremental`` with ``parent``: only what changed since it.
        parent: The backup id an incremental one builds on.
        part_size: Raw (uncompressed) bytes per part, about.
        zstd_level: zstd's level, 1 (fast) to 22 (small).
        cipher: Seals every part (:class:`~membank_server.archive.crypto.AesGcmCipher`
            or :class:`~membank_server.archive.age.AgeCipher`); None leaves them clear.
        created_at: The backup's time (and its id's); now by default.
    """

    def __init__(
        self,
        target: BackupTarget,
        source: Source,
        *,
        kind: Literal["full", "incremental"] = "full",
        parent: str | None = None,
        part_size: int = 64 * MiB,
        zstd_level: int = 3,
        cipher: PartCipher | None = None,
        created_at: datetime | None = None,
    ) -> None:
        if (kind == "incremental") != (parent is not None):
            raise InvalidInput("an incremental backup needs a parent; a full one has none")
        if part_size <= 0:
            raise InvalidInput(f"part size must be positive, got {part_size}")
        if not 1 <= zstd_level <= 22:
            raise InvalidInput(f"zstd level must be 1 to 22, got {zstd_level}")
        self._target = target
        self._source, self._kind, self._parent = source, kind, parent
        self._part_size, self._level = part_size, zstd_level
        self._cipher = cipher
        # Described once: age with a passphrase pays scrypt for it.
        self._encryption = cipher.describe() if cipher else None
        self.created_at = (created_at or datetime.now(UTC)).astimezone(UTC)
        self.backup_id = new_backup_id(self.created_at)
        self._sections: dict[str, SectionInfo] = {}
        self._parts: list[PartInfo] = []
        self._state: Literal["open", "committed", "aborted"] = "open"
        #: Bytes put on the target so far (parts complete).
        self.stored_bytes = 0

    async def __aenter__(self) -> ArchiveWriter:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._state != "open":
            return
        try:
            await self.abort()
        except MembankError as failed:
            if exc is None:
                raise
            exc.add_note(f"the parts of backup {self.backup_id} could not be removed: {failed}")

    def _start(self, section: str) -> None:
        if self._state != "open":
            raise BackupError(
                f"backup {self.backup_id} is {self._state}: nothing more can be added"
            )
        if not _SECTION.match(section):
            raise InvalidInput(f"a section name is 1-32 of a-z, 0-9 and _: {section!r}")
        if section in self._sections:
            raise InvalidInput(f"section {section} is already in backup {self.backup_id}")

    async def add_records(self, section: str, records: Iterable[Any] | AsyncIterable[Any]) -> int:
        """Write a section of records, streaming; returns how many there were."""
        self._start(section)
        encoder = msgspec.json.Encoder()

        def encode(item: Any, buf: bytearray) -> None:
            encoder.encode_into(item, buf, -1)
            buf += b"\n"

        info = await self._section(section, "records", _aiter(records), encode)
        return info.records or 0

    async def add_blob(self, section: str, chunks: Iterable[bytes] | AsyncIterable[bytes]) -> int:
        """Write opaque bytes (a ``pg_dump``) as a section, streaming; returns its size."""
        self._start(section)
        info = await self._section(section, "blob", _pieces(chunks), lambda c, buf: buf.extend(c))
        return info.raw_bytes

    async def _section(
        self,
        section: str,
        kind: Literal["records", "blob"],
        items: AsyncIterator[Any],
        encode: Callable[[Any, bytearray], None],
    ) -> SectionInfo:
        suffix = ("jsonl" if kind == "records" else "bin") + ".zst"
        suffix += self._cipher.suffix if self._cipher else ""
        parts: list[PartInfo] = []
        head = await anext(items, _END)
        while head is not _END:
            name = f"{self.backup_id}/{section}-{len(parts):06d}.{suffix}"
            part = _Part(head)
            stored = await self._target.put(name, self._stream(name, part, items, encode))
            info = PartInfo(
                name=name,
                section=section,
                index=len(parts),
                records=part.records if kind == "records" else None,
                raw_bytes=part.raw,
                stored_bytes=stored.size,
                sha256=stored.sha256,
            )
            parts.append(info)
            self._parts.append(info)
            self.stored_bytes += stored.size
            head = part.next
        summary = SectionInfo(
            kind=kind,
            parts=len(parts),
            records=sum(p.records or 0 for p in parts) if kind == "records" else None,
            raw_bytes=sum(p.raw_bytes for p in parts),
            stored_bytes=sum(p.stored_bytes for p in parts),
        )
        self._sections[section] = summary
        return summary

    async def _stream(
        self,
        name: str,
        part: _Part,
        items: AsyncIterator[Any],
        encode: Callable[[Any, bytearray], None],
    ) -> AsyncIterator[bytes]:
        sealer = self._cipher.sealer(self.backup_id, name) if self._cipher else None
        coder = _Encoder(self._level, sealer)
        buf, item = bytearray(), part.first
        while True:
            encode(item, buf)
            part.records += 1
            if len(buf) >= _BATCH:
                part.raw += len(buf)
                out = await asyncio.to_thread(coder.update, bytes(buf))
                buf.clear()
                if out:
                    yield out
            # The next item is pulled only now: when this part is full it starts the next.
            item = await anext(items, _END)
            if item is _END or part.raw + len(buf) >= self._part_size:
                part.next = item
                break
        part.raw += len(buf)
        yield await asyncio.to_thread(coder.finish, bytes(buf))

    async def commit(
        self,
        users: Mapping[str, Mapping[str, int]] | None = None,
        user_count: int | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> Manifest:
        """Put the manifest after every part: from now on the backup is complete.

        Args:
            users: Per user id, how many records of each section are theirs.
            user_count: How many users, when ``users`` is left out (kept sealed).
            settings: Added to the source's settings (what the backup found on the way).
        """
        if self._state != "open":
            raise BackupError(f"backup {self.backup_id} is {self._state}")
        manifest = Manifest(
            backup_id=self.backup_id,
            created_at=self.created_at,
            finished_at=datetime.now(UTC),
            kind=self._kind,
            parent=self._parent,
            source=msgspec.structs.replace(
                self._source, settings={**self._source.settings, **(settings or {})}
            ),
            compression=Compression(level=self._level),
            encryption=self._encryption,
            sections=dict(self._sections),
            users={u: dict(c) for u, c in (users or {}).items()},
            user_count=user_count,
            parts=list(self._parts),
        )
        if self._cipher is not None:
            manifest = msgspec.structs.replace(manifest, mac=self._cipher.mac(mac_input(manifest)))
        await self._target.put(f"{self.backup_id}/{MANIFEST}", _once(encode_manifest(manifest)))
        self._state = "committed"
        return manifest

    async def abort(self) -> None:
        """Delete the parts written so far (no manifest was put)."""
        if self._state == "committed":
            raise BackupError(f"backup {self.backup_id} is committed: delete it from the catalog")
        self._state = "aborted"
        for part in reversed(self._parts):
            await self._target.delete(part.name)
