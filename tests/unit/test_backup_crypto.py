"""Backup encryption: chunked AES-256-GCM against tampering, age, and the backup key."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pyrage
import pytest

from membank_server.archive.age import AgeCipher
from membank_server.archive.crypto import (
    AesGcmCipher,
    BackupKey,
    PartCipher,
    load_backup_key,
)
from membank_server.domain.errors import BackupCorrupt, BackupKeyError

__all__: list[str] = []

CHUNK = 1000
HEADER = 28
SEALED = CHUNK + 16
BID, BID2 = "20260101T000000Z-00000001", "20260101T000000Z-00000002"
PART, PART2 = f"{BID}/memories-000000.jsonl.zst.aes", f"{BID}/memories-000001.jsonl.zst.aes"


def _seal(
    cipher: PartCipher, data: bytes, bid: str = BID, part: str = PART, piece: int = 333
) -> bytes:
    sealer = cipher.sealer(bid, part)
    out = b"".join(sealer.update(data[i : i + piece]) for i in range(0, len(data), piece))
    return out + sealer.finish()


def _open(
    cipher: PartCipher, data: bytes, bid: str = BID, part: str = PART, piece: int = 777
) -> bytes:
    opener = cipher.opener(bid, part)
    out = b"".join(opener.update(data[i : i + piece]) for i in range(0, len(data), piece))
    return out + opener.finish()


def _chunks(sealed: bytes) -> tuple[bytes, list[bytes]]:
    body = sealed[HEADER:]
    return sealed[:HEADER], [body[i : i + SEALED] for i in range(0, len(body), SEALED)]


@pytest.fixture
def aes() -> AesGcmCipher:
    return AesGcmCipher(BackupKey.generate(), chunk_size=CHUNK)


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 5 * CHUNK + 17])
def test_aes_round_trip_and_layout(aes: AesGcmCipher, size: int) -> None:
    data = os.urandom(size)
    sealed = _seal(aes, data)
    assert _open(aes, sealed) == data
    magic, _salt, chunk = struct.unpack(">8s16sI", sealed[:HEADER])
    assert (magic, chunk) == (b"MBKAES01", CHUNK)
    # Full chunks, then one shorter final chunk (an empty one when the data fills chunks).
    assert len(sealed) == HEADER + (size // CHUNK) * SEALED + (size % CHUNK) + 16


def test_aes_same_data_seals_differently(aes: AesGcmCipher) -> None:
    data = b"x" * 5000
    assert _seal(aes, data) != _seal(aes, data)  # a fresh salt, so a fresh key, per part


@pytest.mark.parametrize("at", [0, 9, HEADER, HEADER + 5, HEADER + SEALED + 100, -1])
def test_aes_flipped_byte_fails(aes: AesGcmCipher, at: int) -> None:
    sealed = bytearray(_seal(aes, os.urandom(3500)))
    sealed[at] ^= 0x01
    with pytest.raises(BackupCorrupt) as caught:
        _open(aes, bytes(sealed))
    assert caught.value.details["part"] == PART
    assert PART in caught.value.message


def test_aes_truncation_at_a_chunk_boundary_fails(aes: AesGcmCipher) -> None:
    header, chunks = _chunks(_seal(aes, os.urandom(3500)))
    with pytest.raises(BackupCorrupt, match="cut short"):
        _open(aes, header + b"".join(chunks[:-1]))  # the final chunk dropped


@pytest.mark.parametrize("cut", [1, 16, 500])
def test_aes_truncation_inside_a_chunk_fails(aes: AesGcmCipher, cut: int) -> None:
    sealed = _seal(aes, os.urandom(3500))
    with pytest.raises(BackupCorrupt):
        _open(aes, sealed[: HEADER + SEALED + cut])


def test_aes_empty_or_header_only_fails(aes: AesGcmCipher) -> None:
    sealed = _seal(aes, b"abc")
    for stub in (b"", sealed[:HEADER], sealed[: HEADER + 10]):
        with pytest.raises(BackupCorrupt):
            _open(aes, stub)


def test_aes_dropped_chunk_fails(aes: AesGcmCipher) -> None:
    header, chunks = _chunks(_seal(aes, os.urandom(3500)))
    with pytest.raises(BackupCorrupt, match="chunk 1"):
        _open(aes, header + chunks[0] + b"".join(chunks[2:]))


def test_aes_reordered_chunks_fail(aes: AesGcmCipher) -> None:
    header, chunks = _chunks(_seal(aes, os.urandom(3500)))
    with pytest.raises(BackupCorrupt, match="chunk 0"):
        _open(aes, header + chunks[1] + chunks[0] + b"".join(chunks[2:]))


def test_aes_appended_chunk_fails(aes: AesGcmCipher) -> None:
    header, chunks = _chunks(_seal(aes, os.urandom(3500)))
    with pytest.raises(BackupCorrupt):
        _open(aes, header + b"".join(chunks) + chunks[0])


def test_aes_part_swapped_within_or_between_backups_fails(aes: AesGcmCipher) -> None:
    sealed = _seal(aes, os.urandom(2500))
    with pytest.raises(BackupCorrupt, match="another part or backup"):
        _open(aes, sealed, part=PART2)  # another part of the same backup
    with pytest.raises(BackupCorrupt, match="another part or backup"):
        _open(aes, sealed, bid=BID2)  # the same part name in another backup


def test_aes_wrong_key_is_refused_before_reading_by_fingerprint(aes: AesGcmCipher) -> None:
    other = AesGcmCipher(BackupKey.generate())
    info = aes.describe()
    assert info.key_id == aes.key.fingerprint and len(info.key_id) == 16
    aes.check(info, BID)
    with pytest.raises(BackupKeyError) as caught:
        other.check(info, BID)
    assert aes.key.fingerprint in caught.value.message
    assert other.key.fingerprint in caught.value.message
    with pytest.raises(BackupCorrupt):  # and were it tried anyway, every chunk fails
        _open(other, _seal(aes, b"secret"))


def test_aes_manifest_mac_depends_on_key_and_bytes(aes: AesGcmCipher) -> None:
    assert aes.mac(b"m") == aes.mac(b"m")
    assert aes.mac(b"m") != aes.mac(b"n")
    assert aes.mac(b"m") != AesGcmCipher(BackupKey.generate()).mac(b"m")


def test_backup_key_never_shows_itself() -> None:
    key = BackupKey.generate()
    text = key.to_base64()
    assert text not in repr(key) and key.fingerprint in repr(key)
    assert BackupKey.from_base64(text).fingerprint == key.fingerprint
    assert key.fingerprint != BackupKey.generate().fingerprint


def test_load_backup_key_from_text_and_file(tmp_path: Path) -> None:
    key = BackupKey.generate()
    assert load_backup_key() is None
    loaded = load_backup_key(key.to_base64())
    assert loaded is not None and loaded.fingerprint == key.fingerprint
    path = tmp_path / "backup.key"
    path.write_text(key.to_base64() + "\n")
    path.chmod(0o600)
    from_file = load_backup_key(key_file=path)
    assert from_file is not None and from_file.fingerprint == key.fingerprint


def test_load_backup_key_refuses_a_file_others_can_read(tmp_path: Path) -> None:
    key = BackupKey.generate().to_base64()
    path = tmp_path / "backup.key"
    path.write_text(key)
    path.chmod(0o644)
    with pytest.raises(BackupKeyError, match="chmod 600") as caught:
        load_backup_key(key_file=path)
    assert key not in str(caught.value)


@pytest.mark.parametrize(
    ("key", "problem"),
    [("not base64!!", "base64"), ("YWJj", "32 bytes")],
)
def test_load_backup_key_refuses_bad_text(key: str, problem: str) -> None:
    with pytest.raises(BackupKeyError, match=problem):
        load_backup_key(key)


def test_load_backup_key_refuses_both_or_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BackupKeyError, match="not both"):
        load_backup_key(BackupKey.generate().to_base64(), tmp_path / "k")
    with pytest.raises(BackupKeyError, match="cannot be read"):
        load_backup_key(key_file=tmp_path / "missing")


def test_age_recipient_round_trip_and_binding() -> None:
    identity = pyrage.x25519.Identity.generate()
    sealer = AgeCipher(recipients=[str(identity.to_public())])
    opener = AgeCipher(identities=[str(identity)])
    info = sealer.describe()
    assert info.recipients == [str(identity.to_public())]
    opener.check(info, BID)
    data = os.urandom(5000)
    sealed = _seal(sealer, data)
    assert pyrage.decrypt(sealed, [identity]).endswith(data)  # plain age can open it
    assert _open(opener, sealed) == data
    with pytest.raises(BackupCorrupt, match="another part or backup"):
        _open(opener, sealed, bid=BID2)
    flipped = bytearray(sealed)
    flipped[-5] ^= 1
    with pytest.raises(BackupCorrupt, match=PART):
        _open(opener, bytes(flipped))
    with pytest.raises(BackupCorrupt):
        _open(opener, sealed[:-20])


def test_age_wrong_identity_or_passphrase_is_a_key_error() -> None:
    identity = pyrage.x25519.Identity.generate()
    info = AgeCipher(recipients=[str(identity.to_public())]).describe()
    stranger = AgeCipher(identities=[str(pyrage.x25519.Identity.generate())])
    with pytest.raises(BackupKeyError, match="none of the identities"):
        stranger.check(info, BID)
    sealer = AgeCipher(passphrase="correct horse")
    pinfo = sealer.describe()
    AgeCipher(passphrase="correct horse").check(pinfo, BID)
    with pytest.raises(BackupKeyError, match="another age passphrase"):
        AgeCipher(passphrase="wrong").check(pinfo, BID)
    with pytest.raises(BackupKeyError, match="passphrase"):
        stranger.check(pinfo, BID)
    with pytest.raises(BackupKeyError, match="age"):
        AesGcmCipher(BackupKey.generate()).check(pinfo, BID)


def test_age_passphrase_round_trip() -> None:
    cipher = AgeCipher(passphrase="correct horse")
    assert _open(cipher, _seal(cipher, b"abc" * 100)) == b"abc" * 100


def test_age_refuses_bad_keys() -> None:
    with pytest.raises(BackupKeyError):
        AgeCipher(recipients=["age1nope"])
    with pytest.raises(BackupKeyError, match="recipient"):
        AgeCipher(identities=[str(pyrage.x25519.Identity.generate())]).describe()
