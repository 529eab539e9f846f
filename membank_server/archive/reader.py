"""ArchiveReader: check a backup whole, then stream its sections back.

Reading is verify-then-stream, in two passes. :meth:`ArchiveReader.verify` reads
every part to the end: size and SHA-256 against the manifest, authentication of
every sealed chunk, the zstd frame and its checksum, every record parsed, counts
against the manifest; the first failure raises ``BackupCorrupt`` naming the part.
:meth:`ArchiveReader.records` and :meth:`ArchiveReader.blob` stream a section once,
checking the same things as they go, but a part's hash can only be checked at its
end, after its records were yielded (an AES-sealed chunk is authenticated before any
of its bytes are). So a restore, which must write nothing from a damaged backup,
calls ``verify`` first and streams after it.

Before a part is read, :meth:`ArchiveReader.open` checks the keys: an encrypted backup
opened without its key, or with another one, raises ``BackupKeyError`` naming both
fingerprints; an AES backup's manifest must match its MAC.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
import zstandard

from membank_server.archive.crypto import PartCipher, PartStream
from membank_server.archive.manifest import MANIFEST, Manifest, PartInfo, decode_manifest, mac_input
from membank_server.domain.errors import BackupCorrupt, BackupKeyError, BackupNotFound, InvalidInput
from membank_server.domain.ports import BackupTarget

__all__ = ["ArchiveReader", "VerifyReport", "load_manifest"]

_T = TypeVar("_T")
#: Compressed bytes fed to zstd at a time; the output is checked against the manifest's
#: raw size after each slice, so a crafted part (a zstd bomb) stops there: zstd's best
#: ratio makes 1 KiB at most 32 MiB. Smaller slices cost nothing measurable.
_SLICE = 1024
_MANIFEST_MAX = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What a full check of one backup read."""

    backup_id: str
    parts: int
    records: int
    raw_bytes: int
    stored_bytes: int


async def load_manifest(target: BackupTarget, backup_id: str) -> Manifest:
    """A backup's manifest, parsed and checked.

    Raises:
        BackupNotFound: no manifest: no such backup, or an incomplete one.
        BackupCorrupt: a manifest that does not parse or belongs to another backup.
    """
    where = f"{target.url} backup {backup_id}"
    data = bytearray()
    try:
        async for chunk in target.get(f"{backup_id}/{MANIFEST}"):
            data += chunk
            if len(data) > _MANIFEST_MAX:
                raise BackupCorrupt(f"{where}: the manifest is over 256 MiB", {"part": MANIFEST})
    except BackupNotFound:
        raise BackupNotFound(
            f"{where}: no manifest (no such backup, or an incomplete one)", {"backup": backup_id}
        ) from None
    manifest = decode_manifest(bytes(data), where)
    if manifest.backup_id != backup_id:
        raise BackupCorrupt(
            f"{where}: the manifest is backup {manifest.backup_id}'s", {"part": MANIFEST}
        )
    return manifest


class _Decoder:
    """Opens (if sealed) and inflates one part, holding it to its recorded raw size."""

    def __init__(self, part: PartInfo, opener: PartStream | None, corrupt: Any) -> None:
        self._zstd = zstandard.ZstdDecompressor().decompressobj()
        self._opener, self._limit, self._corrupt = opener, part.raw_bytes, corrupt
        self._raw = 0

    def _inflate(self, data: bytes) -> bytes:
        out = bytearray()
        for at in range(0, len(data), _SLICE):
            if self._zstd.eof:
                raise self._corrupt("has bytes after the end of its zstd frame")
            try:
                piece = self._zstd.decompress(data[at : at + _SLICE])
            except zstandard.ZstdError as exc:
                raise self._corrupt(f"is not valid zstd: {exc}") from None
            if self._raw + len(out) + len(piece) > self._limit:
                raise self._corrupt(f"inflates past the {self._limit} bytes the manifest records")
            out += piece
        if self._zstd.eof and self._zstd.unused_data:
            raise self._corrupt("has bytes after the end of its zstd frame")
        self._raw += len(out)
        return bytes(out)

    def update(self, data: bytes) -> bytes:
        return self._inflate(self._opener.update(data) if self._opener else data)

    def finish(self) -> bytes:
        out = self._inflate(self._opener.finish()) if self._opener else b""
        if not self._zstd.eof:
            raise self._corrupt("is cut short: its zstd frame does not end")
        if self._raw != self._limit:
            raise self._corrupt(f"holds {self._raw} bytes, the manifest records {self._limit}")
        return out


class ArchiveReader:
    """Reads one backup; make it with :meth:`open`.

    Args:
        target: Where the backup is.
        manifest: Its manifest (see :func:`load_manifest`).
        cipher: The keys of an encrypted backup; ignored for a clear one.
    """

    def __init__(
        self, target: BackupTarget, manifest: Manifest, cipher: PartCipher | None = None
    ) -> None:
        self._target, self.manifest, self._cipher = target, manifest, cipher
        self._check_keys()

    @classmethod
    async def open(
        cls, target: BackupTarget, backup_id: str, cipher: PartCipher | None = None
    ) -> ArchiveReader:
        return cls(target, await load_manifest(target, backup_id), cipher)

    @property
    def backup_id(self) -> str:
        return self.manifest.backup_id

    def _check_keys(self) -> None:
        enc, bid = self.manifest.encryption, self.backup_id
        if enc is None:
            return
        if self._cipher is None:
            which = f", key {enc.key_id}" if enc.key_id else ""
            raise BackupKeyError(
                f"backup {bid} is encrypted ({enc.scheme}{which}): give its key",
                {"backup": bid, "key_id": enc.key_id},
            )
        self._cipher.check(enc, bid)
        mac = self._cipher.mac(mac_input(self.manifest))
        if mac is not None and not hmac.compare_digest(mac, self.manifest.mac or ""):
            raise BackupCorrupt(
                f"backup {bid}: the manifest fails its MAC: it was altered",
                {"backup": bid, "part": MANIFEST},
            )

    def _corrupt(self, part: PartInfo) -> Any:
        def error(why: str) -> BackupCorrupt:
            return BackupCorrupt(
                f"backup {self.backup_id}: part {part.name} {why}",
                {"backup": self.backup_id, "part": part.name},
            )

        return error

    def _parts(self, section: str) -> list[PartInfo]:
        if section not in self.manifest.sections:
            raise InvalidInput(f"backup {self.backup_id} has no section {section}")
        return [p for p in self.manifest.parts if p.section == section]

    async def _raw(self, part: PartInfo) -> AsyncIterator[bytes]:
        corrupt = self._corrupt(part)
        opener = None
        if self.manifest.encryption is not None and self._cipher is not None:
            opener = self._cipher.opener(self.backup_id, part.name)
        decoder = _Decoder(part, opener, corrupt)
        digest, size = hashlib.sha256(), 0
        try:
            async for chunk in self._target.get(part.name):
                size += len(chunk)
                if size > part.stored_bytes:
                    raise corrupt(
                        f"is longer than the {part.stored_bytes} bytes the manifest records"
                    )
                digest.update(chunk)
                out = await asyncio.to_thread(decoder.update, chunk)
                if out:
                    yield out
        except BackupNotFound:
            raise corrupt("is missing") from None
        if size != part.stored_bytes:
            raise corrupt(f"is {size} bytes, the manifest records {part.stored_bytes}: cut short")
        if digest.hexdigest() != part.sha256:
            raise corrupt("does not match its SHA-256 in the manifest: altered or swapped")
        tail = decoder.finish()
        if tail:
            yield tail

    async def _records(
        self, part: PartInfo, decoder: msgspec.json.Decoder[_T]
    ) -> AsyncIterator[_T]:
        corrupt, carry, count = self._corrupt(part), b"", 0
        async for raw in self._raw(part):
            data = carry + raw
            cut = data.rfind(b"\n") + 1
            carry = data[cut:]
            if not cut:
                continue
            try:
                items = decoder.decode_lines(data[:cut])
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise corrupt(f"has a record that does not parse: {exc}") from None
            count += len(items)
            for item in items:
                yield item
        if carry:
            raise corrupt("ends inside a record")
        if count != part.records:
            raise corrupt(f"holds {count} records, the manifest records {part.records}")

    async def records(self, section: str, type: Any = Any) -> AsyncIterator[Any]:
        """The records of a section in order, decoded as ``type`` (plain JSON values by
        default; a dataclass or msgspec Struct such as ``MemoryRecord`` works too)."""
        parts = self._parts(section)
        if parts and parts[0].records is None:
            raise InvalidInput(f"section {section} of backup {self.backup_id} is a blob")
        decoder = msgspec.json.Decoder(type)
        for part in parts:
            async for item in self._records(part, decoder):
                yield item

    async def blob(self, section: str) -> AsyncIterator[bytes]:
        """The bytes of a blob section, in chunks."""
        for part in self._parts(section):
            if part.records is not None:
                raise InvalidInput(f"section {section} of backup {self.backup_id} is records")
            async for chunk in self._raw(part):
                yield chunk

    async def verify(self, progress: Callable[[int], None] | None = None) -> VerifyReport:
        """Read every part whole and check it; see the module docstring. ``progress``
        hears the stored bytes of each part checked.

        Raises:
            BackupCorrupt: the first part that fails, named in the message and details.
        """
        any_json = msgspec.json.Decoder(msgspec.Raw)
        records = 0
        for part in self.manifest.parts:
            if part.records is None:
                async for _ in self._raw(part):
                    pass
            else:
                async for _ in self._records(part, any_json):
                    records += 1
            if progress is not None:
                progress(part.stored_bytes)
        m = self.manifest
        return VerifyReport(
            backup_id=self.backup_id,
            parts=len(m.parts),
            records=records,
            raw_bytes=sum(p.raw_bytes for p in m.parts),
            stored_bytes=m.stored_bytes,
        )
