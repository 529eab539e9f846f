"""The manifest: what a backup holds, written last as ``<backup id>/manifest.json``.

A backup is complete exactly when its manifest is there: the writer puts every part
first and the manifest after them, and a catalog lists a folder without one as
incomplete. The manifest lists every part with its size and SHA-256, so a reader
detects a part altered, cut short, dropped or swapped before trusting a byte of it.
Field by field: ``docs/backup-format.md``.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec

from membank_server.domain.errors import BackupCorrupt

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST",
    "Compression",
    "Encryption",
    "Manifest",
    "PartInfo",
    "SectionInfo",
    "Source",
    "backup_time",
    "decode_manifest",
    "encode_manifest",
    "mac_input",
    "new_backup_id",
]

FORMAT = "membank-backup"
#: Bumped on any change a reader of the previous version would misread.
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
#: ``20260101T020000Z-1a2b3c4d``: the UTC start time (so ids sort by age) and 32 random bits.
_BACKUP_ID = re.compile(r"^(\d{8}T\d{6}Z)-[0-9a-f]{8}$")
_ID_TIME = "%Y%m%dT%H%M%SZ"


class _Struct(msgspec.Struct, frozen=True, kw_only=True):
    pass


class Source(_Struct, frozen=True, kw_only=True):
    """Where the data came from, and the settings a restore must match."""

    backend: str
    dimension: int | None = None
    embedder: str | None = None
    settings: dict[str, Any] = msgspec.field(default_factory=dict)


class Compression(_Struct, frozen=True, kw_only=True):
    algorithm: Literal["zstd"] = "zstd"
    level: int = 3


class Encryption(_Struct, frozen=True, kw_only=True):
    """How parts are sealed; ``key_id`` is the key's fingerprint, never the key."""

    scheme: str
    key_id: str | None = None
    chunk_size: int | None = None
    recipients: list[str] = msgspec.field(default_factory=list)
    #: age with a passphrase: a known text sealed with it, to tell a wrong passphrase.
    check: str | None = None


class PartInfo(_Struct, frozen=True, kw_only=True):
    """One stored file of a section: ``records`` is None for a blob section's part."""

    name: str
    section: str
    index: int
    records: int | None
    raw_bytes: int
    stored_bytes: int
    sha256: str


class SectionInfo(_Struct, frozen=True, kw_only=True):
    kind: Literal["records", "blob"]
    parts: int
    records: int | None
    raw_bytes: int
    stored_bytes: int


class Manifest(_Struct, frozen=True, kw_only=True):
    format: str = FORMAT
    version: int = FORMAT_VERSION
    backup_id: str
    created_at: datetime
    finished_at: datetime
    kind: Literal["full", "incremental"]
    parent: str | None = None
    source: Source
    compression: Compression
    encryption: Encryption | None = None
    sections: dict[str, SectionInfo]
    #: Per user, records per section, as the caller counted them. Empty in a sealed
    #: backup, whose per-user counts are in its sealed ``users`` section instead.
    users: dict[str, dict[str, int]] = msgspec.field(default_factory=dict)
    #: How many users: ``len(users)``, or of the sealed ``users`` section.
    user_count: int | None = None
    parts: list[PartInfo]
    status: Literal["complete"] = "complete"
    #: HMAC-SHA256 of the manifest without this field, under a key derived from the
    #: backup key (aes scheme only): a manifest edited to hide a dropped part fails it.
    mac: str | None = None

    @property
    def stored_bytes(self) -> int:
        return sum(p.stored_bytes for p in self.parts)

    def records(self, section: str) -> int:
        info = self.sections.get(section)
        return info.records or 0 if info else 0


def new_backup_id(at: datetime | None = None) -> str:
    when = (at or datetime.now(UTC)).astimezone(UTC)
    return f"{when.strftime(_ID_TIME)}-{secrets.token_hex(4)}"


def backup_time(backup_id: str) -> datetime | None:
    """The start time a backup id begins with; None when it is not a backup id."""
    match = _BACKUP_ID.match(backup_id)
    if match is None:
        return None
    return datetime.strptime(match.group(1), _ID_TIME).replace(tzinfo=UTC)


def encode_manifest(manifest: Manifest) -> bytes:
    return msgspec.json.format(msgspec.json.encode(manifest), indent=2) + b"\n"


def mac_input(manifest: Manifest) -> bytes:
    """The bytes the manifest's MAC covers: its compact encoding without ``mac``."""
    return msgspec.json.encode(msgspec.structs.replace(manifest, mac=None))


def decode_manifest(data: bytes, where: str) -> Manifest:
    """Parse and check a manifest.

    Raises:
        BackupCorrupt: not JSON, not a membank backup manifest, a newer format
            version, or parts and sections that disagree.
    """
    try:
        manifest = msgspec.json.decode(data, type=Manifest)
    except msgspec.DecodeError as exc:
        raise BackupCorrupt(f"{where}: not a valid manifest: {exc}", {"part": MANIFEST}) from exc
    if manifest.format != FORMAT:
        raise BackupCorrupt(f"{where}: not a {FORMAT} manifest", {"part": MANIFEST})
    if manifest.version > FORMAT_VERSION:
        raise BackupCorrupt(
            f"{where}: format version {manifest.version} is newer than this membank "
            f"reads ({FORMAT_VERSION}): upgrade membank",
            {"part": MANIFEST},
        )
    _check_parts(manifest, where)
    return manifest


def _check_parts(manifest: Manifest, where: str) -> None:
    prefix = f"{manifest.backup_id}/"
    for name, info in manifest.sections.items():
        parts = [p for p in manifest.parts if p.section == name]
        if [p.index for p in parts] != list(range(info.parts)) or any(
            not p.name.startswith(prefix) for p in parts
        ):
            raise BackupCorrupt(
                f"{where}: the parts of section {name} are not numbered 0..{info.parts - 1}",
                {"part": MANIFEST, "section": name},
            )
    names = {p.name for p in manifest.parts}
    if len(names) != len(manifest.parts) or len(names) != sum(
        s.parts for s in manifest.sections.values()
    ):
        raise BackupCorrupt(
            f"{where}: parts named twice or of unknown sections", {"part": MANIFEST}
        )
