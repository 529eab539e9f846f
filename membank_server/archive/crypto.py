"""The backup key, the cipher ports, and parts sealed with chunked AES-256-GCM.

``aes-256-gcm-chunked`` (the layout byte by byte is in ``docs/backup-format.md``): a
part is a 28-byte header (magic, a random 16-byte salt, the chunk size) and chunks of
``chunk_size`` plaintext bytes, each sealed with AES-256-GCM under a key derived
(HKDF-SHA256) from the backup key and the part's salt. A chunk's nonce is its index and
a final flag; its associated data names the backup, the part, the index and the flag.
The last chunk, and only it, is shorter than ``chunk_size`` (empty when the plaintext
fills whole chunks) and carries the final flag. So a flipped byte, a cut (at a chunk
boundary or not), a dropped, repeated or reordered chunk and a part moved to another
name or backup all fail authentication. As each part has its own key, nonces never
repeat however many parts one key seals (the STREAM construction, as age uses it).

``age`` is the other scheme: :mod:`membank_server.archive.age`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import stat
import struct
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from membank_server.archive.manifest import Encryption
from membank_server.domain.errors import BackupCorrupt, BackupKeyError

__all__ = [
    "AES_SCHEME",
    "CONTEXT",
    "AesGcmCipher",
    "BackupKey",
    "PartCipher",
    "PartStream",
    "corrupt_part",
    "load_backup_key",
    "read_private_file",
]

AES_SCHEME = "aes-256-gcm-chunked"
_KEY_BYTES, _SALT_BYTES, _TAG_BYTES = 32, 16, 16
_MAGIC = b"MBKAES01"
_HEADER = struct.Struct(">8s16sI")  # magic, salt, chunk size
CONTEXT = b"membank-backup/v1"
_MAX_CHUNKS = 2**32


class BackupKey:
    """32 secret bytes that seal backups; only its fingerprint is ever shown.

    Args:
        raw: The key.
    """

    __slots__ = ("_raw", "fingerprint")

    def __init__(self, raw: bytes) -> None:
        if len(raw) != _KEY_BYTES:
            raise BackupKeyError(f"a backup key is {_KEY_BYTES} bytes, got {len(raw)}")
        self._raw = raw
        #: 16 hex digits derived one-way from the key; the manifest records it.
        self.fingerprint = self.derive(b"key id")[:8].hex()

    @classmethod
    def generate(cls) -> BackupKey:
        return cls(os.urandom(_KEY_BYTES))

    @classmethod
    def from_base64(cls, text: str, where: str = "backup key") -> BackupKey:
        try:
            raw = base64.b64decode(text.strip().replace("-", "+").replace("_", "/"), validate=True)
        except (binascii.Error, ValueError):
            raise BackupKeyError(f"{where} is not valid base64") from None
        if len(raw) != _KEY_BYTES:
            raise BackupKeyError(f"{where} must be {_KEY_BYTES} bytes of base64, got {len(raw)}")
        return cls(raw)

    def to_base64(self) -> str:
        return base64.b64encode(self._raw).decode("ascii")

    def derive(self, purpose: bytes, salt: bytes | None = None) -> bytes:
        """A 32-byte key for one purpose, so no two uses share key material."""
        kdf = HKDF(hashes.SHA256(), _KEY_BYTES, salt, CONTEXT + b" " + purpose)
        return kdf.derive(self._raw)

    def __repr__(self) -> str:
        return f"BackupKey(fingerprint={self.fingerprint!r})"


def load_backup_key(key: str | None = None, key_file: str | Path | None = None) -> BackupKey | None:
    """The backup key from settings: base64 text, or a file only its owner can read.

    Args:
        key: Base64 of 32 bytes (``backup.key`` / ``MEMBANK_BACKUP__KEY``).
        key_file: A file holding that base64 text, mode 0600 or stricter.

    Returns:
        The key, or None when neither is given (backups are not encrypted).

    Raises:
        BackupKeyError: both given, an unreadable or group/world-accessible file, or
            text that is not base64 of 32 bytes. The key never appears in a message.
    """
    if key and key_file:
        raise BackupKeyError("give the backup key or a backup key file, not both")
    if key:
        return BackupKey.from_base64(key)
    if not key_file:
        return None
    path = Path(key_file).expanduser()
    where = f"backup key file {path}"
    return BackupKey.from_base64(read_private_file(path, where), where)


def read_private_file(path: Path, where: str, limit: int = 4096) -> str:
    """The text of a secret's file, refused unless only its owner can read it.

    Raises:
        BackupKeyError: unreadable, not a regular file, or group/world-accessible.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise BackupKeyError(f"{where} cannot be read: {exc.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise BackupKeyError(f"{where} is not a regular file")
        if mode & 0o077:
            raise BackupKeyError(
                f"{where} can be read or written by others (mode {stat.S_IMODE(mode):04o}): "
                f"chmod 600 {path}"
            )
        return os.read(fd, limit).decode("ascii", errors="replace")
    finally:
        os.close(fd)


class PartStream(Protocol):
    """Seals or opens one part incrementally: bytes in, bytes out, then ``finish``."""

    def update(self, data: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


class PartCipher(Protocol):
    """A sealing scheme with its keys, as the writer and the reader use it."""

    @property
    def scheme(self) -> str: ...

    @property
    def suffix(self) -> str:
        """Appended to a sealed part's file name (``.aes``, ``.age``)."""
        ...

    def describe(self) -> Encryption:
        """What the manifest records: the scheme and which key, never the key."""
        ...

    def check(self, info: Encryption, backup_id: str) -> None:
        """Raise ``BackupKeyError`` unless these keys open a backup sealed as ``info``."""
        ...

    def sealer(self, backup_id: str, part: str) -> PartStream: ...

    def opener(self, backup_id: str, part: str) -> PartStream: ...

    def mac(self, data: bytes) -> str | None:
        """A MAC of the manifest, or None when the scheme has no shared secret."""
        ...


def corrupt_part(backup_id: str, part: str, why: str) -> BackupCorrupt:
    return BackupCorrupt(
        f"backup {backup_id}: part {part} {why}", {"backup": backup_id, "part": part}
    )


def _aad(backup_id: str, part: str, index: int, final: bool) -> bytes:
    ids = b"\0".join((CONTEXT, backup_id.encode(), part.encode()))
    return ids + b"\0" + struct.pack(">IB", index, final)


def _nonce(index: int, final: bool) -> bytes:
    return b"\0" * 7 + struct.pack(">IB", index, final)


class _AesSealer:
    def __init__(self, key: BackupKey, backup_id: str, part: str, chunk_size: int) -> None:
        salt = os.urandom(_SALT_BYTES)
        self._aead = AESGCM(key.derive(b"part", salt))
        self._ids, self._size = (backup_id, part), chunk_size
        self._out = bytearray(_HEADER.pack(_MAGIC, salt, chunk_size))
        self._buf = bytearray()
        self._index = 0

    def _seal(self, chunk: bytes, final: bool) -> None:
        if self._index >= _MAX_CHUNKS:
            raise BackupCorrupt(f"part {self._ids[1]} is too large for one chunk counter")
        aad = _aad(*self._ids, self._index, final)
        self._out += self._aead.encrypt(_nonce(self._index, final), chunk, aad)
        self._index += 1

    def update(self, data: bytes) -> bytes:
        self._buf += data
        size, done = self._size, 0
        while len(self._buf) - done >= size:
            self._seal(bytes(self._buf[done : done + size]), False)
            done += size
        del self._buf[:done]
        out, self._out = bytes(self._out), bytearray()
        return out

    def finish(self) -> bytes:
        self._seal(bytes(self._buf), True)
        self._buf.clear()
        return bytes(self._out)


class _AesOpener:
    def __init__(self, key: BackupKey, backup_id: str, part: str) -> None:
        self._key, self._ids = key, (backup_id, part)
        self._aead: AESGCM | None = None
        self._buf = bytearray()
        self._index, self._sealed = 0, 0

    def _open(self, chunk: bytes, final: bool) -> bytes:
        assert self._aead is not None
        try:
            plain = self._aead.decrypt(
                _nonce(self._index, final), chunk, _aad(*self._ids, self._index, final)
            )
        except InvalidTag:
            raise corrupt_part(
                *self._ids,
                f"fails authentication at chunk {self._index}: altered, cut short, "
                "reordered, or from another part or backup",
            ) from None
        self._index += 1
        return plain

    def update(self, data: bytes) -> bytes:
        self._buf += data
        if self._aead is None:
            if len(self._buf) < _HEADER.size:
                return b""
            magic, salt, size = _HEADER.unpack_from(self._buf)
            if magic != _MAGIC or size <= 0:
                raise corrupt_part(*self._ids, "is not an AES-sealed membank backup part")
            self._aead, self._sealed = AESGCM(self._key.derive(b"part", salt)), size + _TAG_BYTES
            del self._buf[: _HEADER.size]
        out, done = bytearray(), 0
        # A full-size chunk is never the last one: the last is always shorter.
        while len(self._buf) - done >= self._sealed:
            out += self._open(bytes(self._buf[done : done + self._sealed]), False)
            done += self._sealed
        del self._buf[:done]
        return bytes(out)

    def finish(self) -> bytes:
        if self._aead is None or len(self._buf) < _TAG_BYTES:
            raise corrupt_part(*self._ids, "is cut short: its final chunk is missing")
        return self._open(bytes(self._buf), True)


class AesGcmCipher:
    """Chunked AES-256-GCM under a :class:`BackupKey`.

    Args:
        key: The backup key.
        chunk_size: Plaintext bytes per sealed chunk.
    """

    scheme = AES_SCHEME
    suffix = ".aes"

    def __init__(self, key: BackupKey, chunk_size: int = 64 * 1024) -> None:
        self.key = key
        self.chunk_size = chunk_size

    def describe(self) -> Encryption:
        return Encryption(
            scheme=AES_SCHEME, key_id=self.key.fingerprint, chunk_size=self.chunk_size
        )

    def check(self, info: Encryption, backup_id: str) -> None:
        if info.scheme != AES_SCHEME:
            raise BackupKeyError(
                f"backup {backup_id} is sealed with {info.scheme}, not {AES_SCHEME}"
            )
        if info.key_id != self.key.fingerprint:
            raise BackupKeyError(
                f"backup {backup_id} was encrypted with key {info.key_id}, "
                f"not {self.key.fingerprint}: give the backup key it was made with",
                {"backup": backup_id, "key_id": info.key_id, "given": self.key.fingerprint},
            )

    def sealer(self, backup_id: str, part: str) -> PartStream:
        return _AesSealer(self.key, backup_id, part, self.chunk_size)

    def opener(self, backup_id: str, part: str) -> PartStream:
        return _AesOpener(self.key, backup_id, part)

    def mac(self, data: bytes) -> str:
        return hmac.new(self.key.derive(b"manifest"), data, hashlib.sha256).hexdigest()
