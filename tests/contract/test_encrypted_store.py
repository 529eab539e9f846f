"""EncryptedStore over the real stores (``open_store``), EncryptedCache over the real Redis.

What a backend keeps is read around the wrapper: through the inner store, and raw
(every file of the Edge shard and of qdrant-client's local folder, every row of the
PostgreSQL schema as text). A control record written in clear through the inner
store proves each raw read does see plaintext when there is some.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg  # type: ignore[import-untyped]
import pytest

from membank_server.cache.redis import RedisCache
from membank_server.domain.errors import IntegrityError, InvalidInput
from membank_server.domain.model import (
    MemoryRecord,
    MetadataCondition,
    SearchFilter,
    VectorQuery,
    content_hash,
)
from membank_server.domain.ports import MemoryStore
from membank_server.security.crypto import KeyRing, add_key_to_file, retire_keys_in_file
from membank_server.security.encrypted_cache import EncryptedCache
from membank_server.security.encrypted_store import EncryptedStore
from membank_server.services.memories import UserLocks
from membank_server.services.rotation import DataKeyRotation
from tests.contract.encrypted import on_stores

__all__: list[str] = []

Records = Callable[..., MemoryRecord]
Unit = Callable[..., list[float]]


def _now() -> datetime:
    return datetime.now(UTC)


def _contents(records: list[MemoryRecord]) -> dict[UUID, tuple[object, ...]]:
    return {r.memory.id: (r.memory, r.history, r.deleted_at, r.idempotency) for r in records}


def _files(folder: Path) -> bytes:
    return b"".join(f.read_bytes() for f in sorted(folder.rglob("*")) if f.is_file())


async def _raw(request: pytest.FixtureRequest, tmp_path: Path) -> bytes:
    """Everything the backend keeps: its files, and its schema's rows as text."""
    blob = _files(tmp_path / "edge") + _files(tmp_path / "qdrant")
    backend = request.node.callspec.params["open_store"]
    if backend == "pgvector" or backend.startswith("hybrid"):
        schema = request.getfixturevalue("pg_schema")
        conn = await asyncpg.connect(request.getfixturevalue("pg_dsn"))
        try:
            tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname=$1", schema)
            assert len(tables) >= 2
            for t in tables:
                rows = await conn.fetch(f'SELECT x::text AS row FROM "{schema}"."{t[0]}" x')
                blob += "\n".join(r["row"] for r in rows).encode()
        finally:
            await conn.close()
    return blob


@on_stores
async def test_raw_rows_hold_no_plaintext(
    enc: EncryptedStore,
    inner: MemoryStore,
    new_record: Records,
    unit: Unit,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    secret, diagnosis = f"peanut-allergy-{uuid4().hex}", f"diag-{uuid4().hex}"
    meta = {"diagnosis": diagnosis, "topic": "health"}
    mine = [
        new_record("alice", unit(i), content=f"{secret} #{i}", metadata=meta, version=2)
        for i in range(3)
    ]
    mine[0] = replace(mine[0], idempotency=f"idem-{secret}")
    control = new_record("bob", content=f"control-{uuid4().hex}", metadata={"diagnosis": "ctl"})
    await enc.upsert(mine)
    await inner.upsert([control])
    ids = [r.memory.id for r in mine]

    # Through the wrapper: plain memories, history and hashes, as written.
    got = await enc.get("alice", ids)
    for r in mine:
        assert got[r.memory.id].memory == r.memory
        assert await enc.history("alice", r.memory.id) == r.history
        assert got[r.memory.id].idempotency == r.idempotency
    page = await enc.list_page("alice", now=_now(), limit=10)
    assert list(page.items) == [r.memory for r in sorted(mine, key=lambda r: r.memory.id)]
    assert (await enc.search(VectorQuery("alice", unit(0), 1, _now())))[0].memory == mine[0].memory

    # Around it: only ciphertext and the keyed hash.
    raw = list((await inner.get("alice", ids)).values()) + (await inner.scan(None, 100))[0]
    assert len(raw) == 7
    raw_history = [h for i in ids for h in await inner.history("alice", i)]
    assert len(raw_history) == 6
    assert secret not in repr(raw_history) and diagnosis not in repr(raw_history)
    assert all(KeyRing.key_of(h.content) == "k1" for h in raw_history)
    assert secret not in repr(raw) and diagnosis not in repr(raw)
    for r in (r for r in raw if r.memory.user_id == "alice"):
        assert KeyRing.key_of(r.memory.content) == "k1"
        assert KeyRing.key_of(r.memory.metadata["diagnosis"]) == "k1"
        assert r.memory.metadata["topic"] == "health"
        assert all(KeyRing.key_of(h.content) == "k1" for h in r.history)
        assert all(KeyRing.key_of(h.metadata.get("v")) is None for h in r.history)
        assert r.memory.content_hash == enc.ring.index(
            f"alice|{content_hash(got[r.memory.id].memory.content)}"
        )

    await inner.aclose()
    stored = await _raw(request, tmp_path)
    assert control.memory.content.encode() in stored, "the raw read cannot see plaintext"
    assert control.memory.content_hash.encode() in stored
    assert all(r.memory.content_hash.encode() not in stored for r in mine)
    assert secret.encode() not in stored
    assert diagnosis.encode() not in stored


@on_stores
async def test_swapped_ciphertexts_fail_to_open(
    enc: EncryptedStore, inner: MemoryStore, new_record: Records
) -> None:
    a, b = new_record("alice", content="a secret"), new_record("alice", content="b secret")
    theirs = new_record("bob", content="bob's", metadata={"diagnosis": "x"})
    await enc.upsert([a, b, theirs])
    raw = await inner.get("alice", [a.memory.id, b.memory.id])
    ra, rb = raw[a.memory.id], raw[b.memory.id]
    rt = (await inner.get("bob", [theirs.memory.id]))[theirs.memory.id]

    def edit(r: MemoryRecord, **changes: Any) -> MemoryRecord:
        return replace(r, memory=replace(r.memory, **changes))

    async def unreadable(user_id: str, memory_id: UUID) -> None:
        with pytest.raises(IntegrityError, match="failed authentication"):
            await enc.get(user_id, [memory_id])

    await inner.upsert([edit(ra, content=rb.memory.content), edit(rb, content=ra.memory.content)])
    await unreadable("alice", a.memory.id)
    await unreadable("alice", b.memory.id)
    with pytest.raises(IntegrityError):
        await enc.list_page("alice", now=_now(), limit=10)
    # Another user's row, another field of the same row, the same row handed to
    # another user under its id: each fails the same way.
    await inner.upsert([edit(rt, content=ra.memory.content)])
    await unreadable("bob", theirs.memory.id)
    await inner.upsert([edit(rt, metadata={"diagnosis": rt.memory.content})])
    await unreadable("bob", theirs.memory.id)
    # (A store never moves a row to another user: the row is erased, then written
    # again as mallory's, as someone with write access to the database could.)
    await inner.delete_user("alice")
    await inner.upsert([edit(ra, user_id="mallory")])
    await unreadable("mallory", a.memory.id)

    # Putting the right ciphertexts back makes the rows readable again.
    await inner.delete_user("mallory")
    await inner.upsert([ra, rb, rt])
    assert (await enc.get("alice", [a.memory.id]))[a.memory.id].memory == a.memory


@on_stores
async def test_find_by_hash_uses_the_keyed_hash(
    enc: EncryptedStore, inner: MemoryStore, new_record: Records
) -> None:
    x = new_record("alice", content="I like tea")
    gone = new_record("alice", content="I liked coffee", deleted_at=_now())
    await enc.upsert([x, gone, new_record("bob", content="I like tea")])
    h = x.memory.content_hash

    found = await enc.find_by_hash(
        [("alice", h), ("carol", h), ("alice", gone.memory.content_hash)], _now()
    )

    assert found == {("alice", h): x.memory}
    assert await inner.find_by_hash([("alice", h)], _now()) == {}
    keyed = enc.ring.index(f"alice|{h}")
    assert list(await inner.find_by_hash([("alice", keyed)], _now())) == [("alice", keyed)]
    # Keyed by user: carol's hash of the same text differs from alice's.
    assert enc.ring.index(f"carol|{h}") != keyed


@on_stores
async def test_an_encrypted_metadata_key_cannot_be_filtered(
    enc: EncryptedStore, new_record: Records, unit: Unit
) -> None:
    rec = new_record("alice", unit(1), metadata={"diagnosis": {"code": 7}, "topic": "food"})
    await enc.upsert([rec])

    def on(key: str, value: str) -> VectorQuery:
        where = SearchFilter(metadata=(MetadataCondition(key, equals=value),))
        return VectorQuery("alice", unit(1), 5, _now(), filters=where)

    with pytest.raises(InvalidInput, match="'diagnosis'") as caught:
        await enc.search(on("diagnosis", "x"))
    assert caught.value.details == {"field": "filters.metadata.diagnosis"}

    hits = await enc.search(on("topic", "food"))
    assert [h.memory for h in hits] == [rec.memory]
    assert hits[0].memory.metadata == {"diagnosis": {"code": 7}, "topic": "food"}


@on_stores
async def test_rotation_moves_every_record_to_the_new_key(
    enc: EncryptedStore, inner: MemoryStore, new_record: Records, keys_file: Path
) -> None:
    def fact(i: int) -> MemoryRecord:
        meta = {"diagnosis": [i, "x"], "n": i}
        gone = _now() if i % 5 == 0 else None
        return new_record(
            f"u{i % 4}", content=f"fact {i}", metadata=meta, version=1 + i % 3, deleted_at=gone
        )

    records = [fact(i) for i in range(20)]
    await enc.upsert(records)
    legacy = new_record("u9", content="written before encryption", metadata={"diagnosis": 1})
    await inner.upsert([legacy])
    before, _ = await enc.scan(None, 100)
    assert await enc.key_usage() == {"k1": 20, "plaintext": 1}

    assert add_key_to_file(keys_file) == "k2"
    status = await DataKeyRotation(enc, UserLocks().hold, page_size=6).run()

    assert (status.state, status.total, status.done) == ("done", 21, 21)
    assert status.usage_after == {"k2": 21}
    assert await enc.key_usage() == {"k2": 21}
    after, _ = await enc.scan(None, 100)
    assert _contents(after) == _contents(before)
    assert _contents(after)[legacy.memory.id] == _contents([legacy])[legacy.memory.id]
    vectors = {r.memory.id: r.vector for r in before}
    assert all(r.vector == pytest.approx(vectors[r.memory.id], abs=1e-6) for r in after)

    # With k1 retired, everything still opens: nothing depends on it any more.
    assert retire_keys_in_file(keys_file, keep=set()) == ["k1"]
    enc.reload_keys()
    assert enc.ring.ids == ("k2",)
    assert _contents((await enc.scan(None, 100))[0]) == _contents(before)
    found = await enc.find_by_hash([("u1", records[1].memory.content_hash)], _now())
    assert list(found.values()) == [records[1].memory]


# -- EncryptedCache on the real Redis -----------------------------------------------


async def test_encrypted_cache_seals_values_and_misses_on_bad_ones(
    redis_url: str, keys_file: Path
) -> None:
    raw = RedisCache(redis_url, prefix=f"test:{uuid4().hex}:", default_ttl=60.0)
    cache = EncryptedCache(raw, KeyRing.from_file(keys_file))
    try:
        value = b"search hits: I am allergic to peanuts"
        await cache.set("s:alice", value)
        await cache.set("s:bob", b"bob's hits")

        assert await cache.get_many(["s:alice", "nope", "s:bob"]) == [value, None, b"bob's hits"]
        assert cache.name == raw.name
        stored = await raw.get("s:alice")
        assert stored is not None and b"peanuts" not in stored

        # Moved under another key, unsealed, or sealed with a retired key: a miss, deleted.
        await raw.set("s:bob", stored)
        await raw.set("s:plain", b"written before encryption")
        assert await cache.get_many(["s:bob", "s:alice"]) == [None, value]
        assert await raw.get("s:bob") is None
        assert await cache.get("s:plain") is None
        assert await raw.get("s:plain") is None
        add_key_to_file(keys_file)
        retire_keys_in_file(keys_file, keep=set())
        cache.ring.reload()
        assert await cache.get("s:alice") is None
        await cache.set("s:alice", value)
        assert (await cache.get("s:alice"), await cache.clear()) == (value, 1)
    finally:
        await raw.clear()
        await cache.aclose()
