"""The data-key ring: AES-256-GCM sealing of fields and the keyed hash that indexes them.

A sealed field is the text ``mbenc1|<key_id>|<nonce>|<ciphertext+tag>`` (nonce and
ciphertext base64url without padding), so each value names the key that opens it
and keys can be rotated record by record. The caller's AAD binds a ciphertext to
its row, user and field: copied anywhere else it fails to open.

Key material never appears in a message, a repr or an exception chain: errors name
the key id and the problem only, raised ``from None`` (a decoding error can carry
the text it failed on).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import re
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from membank_server.domain.errors import ConfigError, IntegrityError

__all__ = ["KeyRing", "add_key_to_file", "generate_key", "retire_keys_in_file", "write_keys_file"]

_VERSION = "mbenc1"
_BYTES_PREFIX = b"mbenc1b|"
_KEY_BYTES, _NONCE_BYTES, _TAG_BYTES = 32, 12, 16
_KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$(?!\n)")
#: At most one re-read of the keys file per this many seconds for unknown key ids.
_RELOAD_EVERY = 1.0


@dataclass(frozen=True, slots=True)
class _Keys:
    active: str
    # repr=False: a dataclass repr would print the key bytes.
    ciphers: Mapping[str, AESGCM] = field(repr=False)
    index_key: bytes = field(repr=False)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _key_bytes(value: object, name: str, where: str) -> bytes:
    """Decode one base64 key (standard or url-safe alphabet) of exactly 32 bytes."""
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {name} must be a base64 string")
    try:
        raw = base64.b64decode(value.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{where}: {name} is not valid base64") from None
    if len(raw) != _KEY_BYTES:
        raise ConfigError(f"{where}: {name} must be {_KEY_BYTES} bytes, got {len(raw)}")
    return raw


def _build(keys: object, active: object, index_key: object, where: str) -> _Keys:
    if not isinstance(keys, Mapping) or not keys:
        raise ConfigError(f"{where}: keys must map at least one key id to a base64 key")
    ciphers: dict[str, AESGCM] = {}
    for key_id, value in keys.items():
        if not isinstance(key_id, str) or not _KEY_ID.match(key_id):
            # The id is not echoed: a malformed id may be key material pasted in the wrong place.
            raise ConfigError(f"{where}: a key id is not 1-64 letters, digits, '_', '.' or '-'")
        ciphers[key_id] = AESGCM(_key_bytes(value, f"key {key_id!r}", where))
    if not isinstance(active, str) or active not in ciphers:
        named = f"{active!r} " if isinstance(active, str) and _KEY_ID.match(active) else ""
        raise ConfigError(f"{where}: the active key {named}is not one of {sorted(ciphers)}")
    return _Keys(active, ciphers, _key_bytes(index_key, "index_key", where))


def _load(path: Path) -> tuple[dict[str, Any], _Keys]:
    """The keys file's JSON object and the keys it holds, checked."""
    where = f"keys file {path}"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{where} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"{where} cannot be read: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        # exc.doc holds the whole file: only its position is kept.
        raise ConfigError(f"{where} is not valid JSON (line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must hold a JSON object with active, keys and index_key")
    return data, _build(data.get("keys"), data.get("active"), data.get("index_key"), where)


def _parse(token: object) -> tuple[str, bytes, bytes] | None:
    """(key id, nonce, ciphertext) of a sealed text, or None when it is not one."""
    if not isinstance(token, str) or not token.startswith(_VERSION + "|"):
        return None
    parts = token.split("|")
    if len(parts) != 4 or not _KEY_ID.match(parts[1]):
        return None
    try:
        nonce, sealed = (base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)) for p in parts[2:])
    except (binascii.Error, ValueError):
        return None
    if len(nonce) != _NONCE_BYTES or len(sealed) < _TAG_BYTES:
        return None
    return parts[1], nonce, sealed


class KeyRing:
    """Data keys by id, the active one that seals, and the index key of the keyed hash.

    Build it with :meth:`from_settings` or :meth:`from_file`; a file ring can
    :meth:`reload` after ``membank keys`` changed the file. Reload swaps the whole
    key set in one assignment, so a concurrent seal or open sees the old or the new
    set, never a mix. A file ring asked to open a key id it does not know re-reads
    the file first (at most once a second): another instance may have rotated to a
    key added since this one loaded the file.
    """

    def __init__(self, keys: _Keys, path: Path | None = None) -> None:
        self._keys = keys
        self._path = path
        self._reloaded = time.monotonic()

    @classmethod
    def from_settings(cls, *, keys: Mapping[str, str], active: str, index_key: str) -> KeyRing:
        return cls(_build(keys, active, index_key, "security.encryption"))

    @classmethod
    def from_file(cls, path: Path) -> KeyRing:
        return cls(_load(path)[1], path)

    def reload(self) -> None:
        """Re-read the keys file (no-op for a settings ring); a bad file keeps the old keys."""
        if self._path is not None:
            self._reloaded = time.monotonic()
            self._keys = _load(self._path)[1]

    @property
    def active_id(self) -> str:
        return self._keys.active

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(sorted(self._keys.ciphers))

    def __repr__(self) -> str:
        source = f"file {str(self._path)!r}" if self._path else "settings"
        return f"KeyRing(active={self.active_id!r}, ids={list(self.ids)!r}, source={source})"

    # -- text fields ---------------------------------------------------------

    def seal(self, plaintext: str, aad: bytes, key_id: str | None = None) -> str:
        """Seal with the active key, or the key ``key_id`` (a key check a backup keeps)."""
        keys = self._keys
        kid = keys.active if key_id is None else key_id
        nonce = os.urandom(_NONCE_BYTES)
        sealed = keys.ciphers[kid].encrypt(nonce, plaintext.encode("utf-8"), aad)
        return f"{_VERSION}|{kid}|{_b64(nonce)}|{_b64(sealed)}"

    def open(self, token: str, aad: bytes) -> str:
        """The plaintext of a sealed text.

        Raises:
            IntegrityError: not a sealed text, an unknown key id, or a ciphertext that
                does not belong to this AAD (another row, user or field) or was altered.
        """
        parsed = _parse(token)
        if parsed is None:
            raise IntegrityError("a sealed value is malformed")
        key_id, nonce, sealed = parsed
        return self._decrypt(key_id, nonce, sealed, aad).decode("utf-8")

    @staticmethod
    def key_of(token: object) -> str | None:
        """The key id a value is sealed with; None when it is not a sealed text."""
        parsed = _parse(token)
        return parsed[0] if parsed else None

    @staticmethod
    def is_sealed(value: object) -> bool:
        return _parse(value) is not None

    # -- bytes (cache values) ------------------------------------------------

    def seal_bytes(self, data: bytes, aad: bytes) -> bytes:
        """Seal bytes compactly: ``mbenc1b|<key_id>|`` then nonce and ciphertext, raw."""
        keys = self._keys
        nonce = os.urandom(_NONCE_BYTES)
        sealed = keys.ciphers[keys.active].encrypt(nonce, data, aad)
        return b"%s%s|%s%s" % (_BYTES_PREFIX, keys.active.encode("ascii"), nonce, sealed)

    def open_bytes(self, data: bytes, aad: bytes) -> bytes:
        """Raises IntegrityError like :meth:`open`."""
        head, sep, body = data[len(_BYTES_PREFIX) :].partition(b"|")
        key_id = head.decode("ascii", "replace")
        well_formed = data.startswith(_BYTES_PREFIX) and sep and _KEY_ID.match(key_id)
        if not well_formed or len(body) < _NONCE_BYTES + _TAG_BYTES:
            raise IntegrityError("a sealed value is malformed")
        return self._decrypt(key_id, body[:_NONCE_BYTES], body[_NONCE_BYTES:], aad)

    def _decrypt(self, key_id: str, nonce: bytes, sealed: bytes, aad: bytes) -> bytes:
        cipher = self._keys.ciphers.get(key_id)
        if cipher is None and self._path and time.monotonic() - self._reloaded >= _RELOAD_EVERY:
            self.reload()  # a small file, read at most once a second: fine on the loop
            cipher = self._keys.ciphers.get(key_id)
        if cipher is None:
            raise IntegrityError(
                f"a value is sealed with key {key_id!r}, which is not in the key ring",
                {"key_id": key_id},
            )
        try:
            return cipher.decrypt(nonce, sealed, aad)
        except InvalidTag:
            raise IntegrityError(
                f"a value sealed with key {key_id!r} failed authentication:"
                " it belongs to another row or field, or was altered",
                {"key_id": key_id},
            ) from None

    # -- keyed hash ----------------------------------------------------------

    def index(self, text: str) -> str:
        """HMAC-SHA256 (hex) under the index key: equal texts match, without a plain hash."""
        return hmac.new(self._keys.index_key, text.encode("utf-8"), hashlib.sha256).hexdigest()


# -- the keys file (for the CLI) ----------------------------------------------------


def generate_key() -> str:
    """Base64 of 32 random bytes: a data key or an index key."""
    return base64.b64encode(os.urandom(_KEY_BYTES)).decode("ascii")


def write_keys_file(path: Path, *, active: str, keys: Mapping[str, str], index_key: str) -> None:
    """Write a keys file atomically (temp file, fsync, rename), readable by its owner only."""
    _build(keys, active, index_key, f"keys file {path}")
    text = json.dumps({"active": active, "keys": dict(keys), "index_key": index_key}, indent=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    # mkstemp creates the file 0600, so the keys are never readable by others, even briefly.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # so the rename itself survives a crash
    finally:
        os.close(directory)


def _next_id(ids: Mapping[str, str]) -> str:
    # Past the highest kN, not the lowest gap: reusing a retired id would make old
    # ciphertexts (a backup) fail as tampered instead of naming a missing key.
    numbers = [int(k[1:]) for k in ids if re.fullmatch(r"k[0-9]{1,9}", k)]
    return f"k{max(numbers, default=0) + 1}"


def add_key_to_file(path: Path) -> str:
    """Add a fresh key, make it active and return its id; a missing file is created."""
    if not path.exists():
        write_keys_file(path, active="k1", keys={"k1": generate_key()}, index_key=generate_key())
        return "k1"
    data, _ = _load(path)  # refuses to extend a file that is already broken
    keys: dict[str, str] = dict(data["keys"])
    key_id = _next_id(keys)
    keys[key_id] = generate_key()
    write_keys_file(path, active=key_id, keys=keys, index_key=data["index_key"])
    return key_id


def retire_keys_in_file(path: Path, keep: set[str]) -> list[str]:
    """Remove every key id not in ``keep`` (the active key always stays); returns them.

    Check first (``key_usage``) that no stored record is still sealed with them.
    """
    data, checked = _load(path)
    active = checked.active
    removed = sorted(k for k in data["keys"] if k not in keep and k != active)
    if removed:
        keys = {k: v for k, v in data["keys"].items() if k not in removed}
        write_keys_file(path, active=active, keys=keys, index_key=data["index_key"])
    return removed
