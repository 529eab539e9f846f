"""KeyRing: sealing, opening, the keyed index and the keys file."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from pathlib import Path

import pytest

from membank_server.domain.errors import ConfigError, IntegrityError
from membank_server.security import crypto
from membank_server.security.crypto import (
    KeyRing,
    add_key_to_file,
    generate_key,
    retire_keys_in_file,
    write_keys_file,
)

__all__: list[str] = []

K1, K2, INDEX = generate_key(), generate_key(), generate_key()
SHORT = base64.b64encode(b"\x07" * 16).decode()


def _ring(active: str = "k1") -> KeyRing:
    return KeyRing.from_settings(keys={"k1": K1, "k2": K2}, active=active, index_key=INDEX)


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _flip(token: str, part: int, at: int = 0) -> str:
    parts = token.split("|")
    raw = bytearray(_b64url(parts[part]))
    raw[at] ^= 0x01
    parts[part] = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    return "|".join(parts)


def test_seal_then_open_round_trips_any_text() -> None:
    ring = _ring()
    for text in ["I am allergic to peanuts", "", "ünïcødé | pipes | 🥜", "x" * 10_000]:
        assert ring.open(ring.seal(text, b"aad"), b"aad") == text


def test_a_token_has_four_parts_and_names_its_key() -> None:
    token = _ring("k2").seal("secret", b"a")

    version, key_id, nonce, sealed = token.split("|")
    assert (version, key_id) == ("mbenc1", "k2")
    assert len(_b64url(nonce)) == 12
    assert len(_b64url(sealed)) == len("secret") + 16
    assert "=" not in token
    assert "secret" not in token
    assert KeyRing.key_of(token) == "k2"
    assert KeyRing.is_sealed(token)


@pytest.mark.parametrize(
    "value", ["secret", "mbenc1|k1|x", "mbenc1|k1|AAAA|AAAA", 42, None, {"a": 1}, ""]
)
def test_values_that_are_not_tokens(value: object) -> None:
    assert KeyRing.key_of(value) is None
    assert not KeyRing.is_sealed(value)


# Another row, another user, another field, none.
@pytest.mark.parametrize(
    "wrong", [b"row-B|alice|content", b"row-A|bob|content", b"row-A|alice|x", b""]
)
def test_opening_with_another_aad_fails(wrong: bytes) -> None:
    ring = _ring()
    token = ring.seal("secret", b"row-A|alice|content")

    with pytest.raises(IntegrityError, match="failed authentication"):
        ring.open(token, wrong)


@pytest.mark.parametrize(("part", "at"), [(2, 0), (3, 0), (3, -1)])
def test_a_flipped_bit_fails(part: int, at: int) -> None:
    ring = _ring()
    token = ring.seal("secret", b"a")

    with pytest.raises(IntegrityError):
        ring.open(_flip(token, part, at), b"a")


def test_an_unknown_key_id_fails_and_is_named() -> None:
    token = _ring().seal("secret", b"a")
    only_k2 = KeyRing.from_settings(keys={"k2": K2}, active="k2", index_key=INDEX)

    with pytest.raises(IntegrityError, match="'k1'") as caught:
        only_k2.open(token, b"a")
    assert caught.value.details == {"key_id": "k1"}
    with pytest.raises(IntegrityError, match="failed authentication"):
        _ring().open(token.replace("|k1|", "|k2|"), b"a")  # relabelled to another known key


@pytest.mark.parametrize("token", ["plain text", "mbenc1|k1|AAAA", "mbenc1|k1|!!|??"])
def test_a_malformed_token_fails(token: str) -> None:
    with pytest.raises(IntegrityError, match="malformed"):
        _ring().open(token, b"a")


def test_two_seals_of_one_text_differ() -> None:
    ring = _ring()
    a, b = ring.seal("same", b"a"), ring.seal("same", b"a")

    assert a.split("|")[2] != b.split("|")[2] and a != b
    assert ring.open(a, b"a") == ring.open(b, b"a") == "same"


def test_bytes_round_trip_and_fail_like_text() -> None:
    ring = _ring()
    data = bytes(range(256)) + b"|mbenc1b|"
    sealed = ring.seal_bytes(data, b"key-1")

    assert sealed.startswith(b"mbenc1b|k1|")
    assert data not in sealed
    assert ring.open_bytes(sealed, b"key-1") == data
    with pytest.raises(IntegrityError):
        ring.open_bytes(sealed, b"key-2")
    with pytest.raises(IntegrityError):
        ring.open_bytes(sealed[:-1] + bytes([sealed[-1] ^ 1]), b"key-1")
    with pytest.raises(IntegrityError, match="malformed"):
        ring.open_bytes(b"plain", b"key-1")


def test_index_is_stable_keyed_and_not_the_plain_hash() -> None:
    ring = _ring()
    digest = hashlib.sha256(b"I like tea").hexdigest()

    assert ring.index(digest) == ring.index(digest) != ring.index(digest + "x")
    assert ring.index(digest) not in (digest, hashlib.sha256(digest.encode()).hexdigest())
    assert len(ring.index(digest)) == 64
    other = KeyRing.from_settings(keys={"k1": K1}, active="k1", index_key=generate_key())
    assert other.index(digest) != ring.index(digest)
    # The index key, not the data key, keys the hash: rotation keeps duplicates findable.
    assert _ring("k2").index(digest) == ring.index(digest)


# -- configuration errors ------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "active", "index_key", "problem"),
    [
        ({"k1": "not*base64!"}, "k1", INDEX, "not valid base64"),
        ({"k1": SHORT}, "k1", INDEX, "must be 32 bytes, got 16"),
        ({"k1": K1}, "k2", INDEX, "active key 'k2' is not one of"),
        ({"k1": K1}, "k1", SHORT, "index_key must be 32 bytes"),
        ({"k1": K1}, "k1", "%%%", "index_key is not valid base64"),
        ({}, "k1", INDEX, "at least one key"),
        ({K1: K1}, "k1", INDEX, "a key id is not"),
        ({"k1": K1}, K2, INDEX, "the active key is not one of"),
    ],
)
def test_bad_settings_name_the_problem_never_the_key(
    keys: dict[str, str], active: str, index_key: str, problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem) as caught:
        KeyRing.from_settings(keys=keys, active=active, index_key=index_key)

    message = str(caught.value)
    assert "\n" not in message
    for secret in (*keys.values(), index_key, K1, K2):
        assert secret not in message
    # No chained decoding error either: those can carry the text they failed on.
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None or caught.value.__suppress_context__


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "does not exist"),
        ('{"active": "k1", "keys": {"k1": "' + K1 + '"', "not valid JSON"),
        ('["' + K1 + '"]', "must hold a JSON object"),
        (json.dumps({"active": "k1", "keys": {"k1": K1[:-4]}, "index_key": INDEX}), "k1"),
        (json.dumps({"active": "k1", "keys": {"k1": K1}}), "index_key"),
    ],
)
def test_a_bad_keys_file_names_the_problem_never_the_key(
    tmp_path: Path, content: str | None, problem: str
) -> None:
    path = tmp_path / "keys.json"
    if content is not None:
        path.write_text(content)

    with pytest.raises(ConfigError, match=problem) as caught:
        KeyRing.from_file(path)

    assert str(path) in str(caught.value)
    for secret in (K1, K1[:-4], INDEX):
        assert secret not in str(caught.value)


def test_repr_shows_ids_never_key_bytes() -> None:
    ring = _ring("k2")
    text = repr(ring)

    assert "k1" in text and "'k2'" in text
    for secret in (K1, K2, INDEX):
        assert secret not in text
        raw = base64.b64decode(secret)
        assert repr(raw)[2:-1] not in text
        assert raw.hex() not in text
    assert repr(ring._keys).count("k2") == 1  # the dataclass repr omits the key bytes


# -- the keys file -------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_add_creates_then_rotates_and_retire_removes(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "keys.json"

    assert add_key_to_file(path) == "k1"
    assert _mode(path) == 0o600
    ring = KeyRing.from_file(path)
    assert (ring.active_id, ring.ids) == ("k1", ("k1",))
    token = ring.seal("old", b"a")
    index_before = ring.index("d")

    assert [add_key_to_file(path), add_key_to_file(path)] == ["k2", "k3"]
    assert _mode(path) == 0o600
    ring.reload()
    assert (ring.active_id, ring.ids) == ("k3", ("k1", "k2", "k3"))
    assert KeyRing.key_of(ring.seal("new", b"a")) == "k3"
    assert ring.open(token, b"a") == "old"
    assert ring.index("d") == index_before

    assert retire_keys_in_file(path, keep={"k2"}) == ["k1"]
    assert _mode(path) == 0o600
    ring.reload()
    assert ring.ids == ("k2", "k3")
    with pytest.raises(IntegrityError, match="'k1'"):
        ring.open(token, b"a")
    # The active key stays even when not kept; a retired id is never handed out again.
    assert retire_keys_in_file(path, keep=set()) == ["k2"]
    assert KeyRing.from_file(path).ids == ("k3",)
    assert add_key_to_file(path) == "k4"
    assert sorted(p.name for p in path.parent.iterdir()) == ["keys.json"]


def test_write_keys_file_round_trips_and_refuses_bad_keys(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    write_keys_file(path, active="k2", keys={"k1": K1, "k2": K2}, index_key=INDEX)

    saved = json.loads(path.read_text())
    assert saved == {"active": "k2", "keys": {"k1": K1, "k2": K2}, "index_key": INDEX}
    assert _mode(path) == 0o600
    assert KeyRing.from_file(path).open(_ring("k2").seal("x", b"a"), b"a") == "x"

    with pytest.raises(ConfigError, match="active key"):
        write_keys_file(path, active="k9", keys={"k1": K1}, index_key=INDEX)
    assert KeyRing.from_file(path).active_id == "k2"


def test_reload_keeps_the_old_keys_of_a_broken_file_and_ignores_settings(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    add_key_to_file(path)
    ring = KeyRing.from_file(path)
    path.write_text("{broken")

    with pytest.raises(ConfigError, match="not valid JSON"):
        ring.reload()
    assert ring.active_id == "k1"
    assert ring.open(ring.seal("still works", b"a"), b"a") == "still works"
    settings = _ring()
    settings.reload()
    assert (settings.active_id, settings.ids) == ("k1", ("k1", "k2"))


def test_a_file_ring_rereads_the_file_for_a_key_it_does_not_know(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "keys.json"
    add_key_to_file(path)
    stale = KeyRing.from_file(path)
    add_key_to_file(path)
    token = KeyRing.from_file(path).seal("from another instance", b"a")

    monkeypatch.setattr(crypto, "_RELOAD_EVERY", 3600.0)
    with pytest.raises(IntegrityError, match="'k2'"):
        stale.open(token, b"a")
    monkeypatch.setattr(crypto, "_RELOAD_EVERY", 0.0)
    assert stale.open(token, b"a") == "from another instance"
    assert stale.active_id == "k2"
    with pytest.raises(IntegrityError, match="'k9'"):
        stale.open(token.replace("|k2|", "|k9|"), b"a")
