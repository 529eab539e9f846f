"""The archive format on an in-memory target: round trips, parts, keys, streaming."""

from __future__ import annotations

import hashlib
import random
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import msgspec
import pytest
import zstandard

from membank_server.archive.catalog import Catalog
from membank_server.archive.crypto import AesGcmCipher, BackupKey, PartCipher
from membank_server.archive.manifest import (
    MANIFEST,
    Manifest,
    Source,
    encode_manifest,
)
from membank_server.archive.reader import ArchiveReader
from membank_server.archive.writer import ArchiveWriter
from membank_server.domain.backup import BackupStatus
from membank_server.domain.errors import (
    BackupCorrupt,
    BackupError,
    BackupKeyError,
    BackupNotFound,
    InvalidInput,
)
from membank_server.domain.model import Event, HistoryEvent, Memory, MemoryRecord, content_hash
from tests.unit.backup_fakes import MemoryTarget

__all__: list[str] = []

SOURCE = Source(
    backend="edge", dimension=4, embedder="minilm-int8", settings={"distance": "cosine"}
)
T0 = datetime(2026, 1, 1, 2, tzinfo=UTC)


def _records(n: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    rnd = random.Random(seed)
    for i in range(n):
        yield {
            "id": i,
            "user_id": f"u{i % 7}",
            "content": "memory " * rnd.randint(0, 40),
            "vector": [rnd.random() for _ in range(4)],
        }


def _record(i: int) -> MemoryRecord:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    memory = Memory(
        id=UUID(int=i),
        user_id="alice",
        content=f"likes tea {i}",
        metadata={"n": i, "tags": ["a", "b"]},
        created_at=at,
        updated_at=at,
        version=2,
        content_hash=content_hash(f"likes tea {i}"),
        agent_id="agent",
        expires_at=None,
    )
    history = (
        HistoryEvent(Event.ADD, 1, "likes coffee", {}, at),
        HistoryEvent(Event.UPDATE, 2, f"likes tea {i}", {"n": i}, at),
    )
    return MemoryRecord(memory, [0.5, 0.25, 0.125, 0.0625], history, None, "digest")


async def _write(
    target: MemoryTarget,
    n: int = 3000,
    *,
    part_size: int = 4096,
    cipher: PartCipher | None = None,
    at: datetime = T0,
) -> Manifest:
    async with ArchiveWriter(
        target, SOURCE, part_size=part_size, cipher=cipher, created_at=at
    ) as w:
        await w.add_records("memories", _records(n))
        await w.add_blob("pg_dump", [bytes(range(256)) * 100, b"tail"])
        return await w.commit({"u0": {"memories": 429}})


@pytest.mark.parametrize("read_chunk", [61, 997, 65_536])
async def test_round_trip_over_many_parts(read_chunk: int) -> None:
    target = MemoryTarget(read_chunk=read_chunk)
    m = await _write(target)
    parts = [p for p in m.parts if p.section == "memories"]
    assert len(parts) > 20 and m.sections["memories"].parts == len(parts)
    assert [p.index for p in parts] == list(range(len(parts)))
    assert sum(p.records or 0 for p in parts) == m.records("memories") == 3000
    longest = max(len(msgspec.json.encode(r)) + 1 for r in _records(3000))
    assert all(p.raw_bytes < 4096 + longest for p in parts)  # closed at the first record past it
    assert m.users == {"u0": {"memories": 429}}
    assert (m.source, m.kind, m.parent, m.compression.level) == (SOURCE, "full", None, 3)
    assert target.puts[-1] == f"{m.backup_id}/{MANIFEST}"  # the manifest last
    reader = await ArchiveReader.open(target, m.backup_id)
    assert [r async for r in reader.records("memories")] == list(_records(3000))
    assert b"".join([c async for c in reader.blob("pg_dump")]) == bytes(range(256)) * 100 + b"tail"
    report = await reader.verify()
    assert (report.records, report.parts) == (3000, len(m.parts))


async def test_parts_are_plain_zstd_json_lines() -> None:
    target = MemoryTarget()
    m = await _write(target, 50, part_size=1 << 20)
    (part,) = [p for p in m.parts if p.section == "memories"]
    # One streamed frame, as `zstd -dc` reads it (no content size in its header).
    raw = zstandard.ZstdDecompressor().decompressobj().decompress(target.files[part.name])
    assert [msgspec.json.decode(line) for line in raw.splitlines()] == list(_records(50))
    assert part.name == f"{m.backup_id}/memories-000000.jsonl.zst"
    assert msgspec.json.decode(target.files[f"{m.backup_id}/{MANIFEST}"])["status"] == "complete"


async def test_memory_records_round_trip_as_dataclasses() -> None:
    target = MemoryTarget()
    async with ArchiveWriter(target, SOURCE, part_size=2000) as w:
        await w.add_records("memories", (_record(i) for i in range(40)))
        m = await w.commit()
    reader = await ArchiveReader.open(target, m.backup_id)
    back = [r async for r in reader.records("memories", MemoryRecord)]
    assert back == [_record(i) for i in range(40)]


@pytest.mark.parametrize("read_chunk", [13, 65_536])
async def test_encrypted_round_trip_and_keys_checked_before_reading(read_chunk: int) -> None:
    target, key = MemoryTarget(read_chunk=read_chunk), BackupKey.generate()
    m = await _write(target, 500, cipher=AesGcmCipher(key, chunk_size=512))
    assert m.encryption is not None and m.encryption.key_id == key.fingerprint
    assert m.mac and all(p.name.endswith(".aes") for p in m.parts)
    reader = await ArchiveReader.open(target, m.backup_id, AesGcmCipher(key))
    assert [r async for r in reader.records("memories")] == list(_records(500))
    with pytest.raises(
        BackupKeyError, match=f"encrypted \\(aes-256-gcm-chunked, key {key.fingerprint}"
    ):
        await ArchiveReader.open(target, m.backup_id)
    other = BackupKey.generate()
    with pytest.raises(BackupKeyError, match=f"key {key.fingerprint}, not {other.fingerprint}"):
        await ArchiveReader.open(target, m.backup_id, AesGcmCipher(other))


async def test_an_edited_manifest_fails_its_mac() -> None:
    target, key = MemoryTarget(), BackupKey.generate()
    m = await _write(target, 500, cipher=AesGcmCipher(key))
    # Hide the blob section as if it had never been written.
    edited = msgspec.structs.replace(
        m,
        parts=[p for p in m.parts if p.section != "pg_dump"],
        sections={k: v for k, v in m.sections.items() if k != "pg_dump"},
    )
    target.files[f"{m.backup_id}/{MANIFEST}"] = encode_manifest(edited)
    with pytest.raises(BackupCorrupt, match="MAC"):
        await ArchiveReader.open(target, m.backup_id, AesGcmCipher(key))


async def test_empty_section_and_unknown_section() -> None:
    target = MemoryTarget()
    async with ArchiveWriter(target, SOURCE) as w:
        assert await w.add_records("audit", []) == 0
        m = await w.commit()
    assert m.sections["audit"].parts == 0 and m.parts == []
    reader = await ArchiveReader.open(target, m.backup_id)
    assert [r async for r in reader.records("audit")] == []
    with pytest.raises(InvalidInput, match="no section"):
        [r async for r in reader.records("keys")]


async def test_a_failing_source_leaves_nothing() -> None:
    target = MemoryTarget()

    async def broken() -> AsyncIterator[dict[str, int]]:
        for i in range(2000):
            yield {"i": i, "pad": i * 1000}
        raise RuntimeError("the store went away")

    async def back_up() -> None:
        async with ArchiveWriter(target, SOURCE, part_size=2048) as w:
            await w.add_records("memories", broken())
            await w.commit()

    with pytest.raises(RuntimeError, match="went away"):
        await back_up()
    assert len(target.puts) > 3  # parts were written, then removed
    assert target.files == {}


async def test_leaving_without_commit_removes_the_parts() -> None:
    target = MemoryTarget()
    async with ArchiveWriter(target, SOURCE, part_size=2048) as w:
        await w.add_records("memories", _records(300))
    assert target.files == {}


async def test_writer_misuse() -> None:
    target = MemoryTarget()
    with pytest.raises(InvalidInput, match="parent"):
        ArchiveWriter(target, SOURCE, kind="incremental")
    with pytest.raises(InvalidInput, match="parent"):
        ArchiveWriter(target, SOURCE, parent="20260101T000000Z-00000000")
    async with ArchiveWriter(target, SOURCE) as w:
        await w.add_records("memories", _records(3))
        with pytest.raises(InvalidInput, match="already"):
            await w.add_records("memories", _records(3))
        with pytest.raises(InvalidInput, match="section name"):
            await w.add_records("Bad Name", [])
        await w.commit()
        with pytest.raises(BackupError, match="committed"):
            await w.add_records("audit", [])
        with pytest.raises(BackupError, match="committed"):
            await w.commit()


def _forge(target: MemoryTarget, m: Manifest, data: bytes, raw_bytes: int | None = None) -> None:
    """Replace the first part with ``data`` and rewrite the manifest to match its size
    and hash, as someone able to write to the target could."""
    part = m.parts[0]
    target.files[part.name] = data
    forged = msgspec.structs.replace(
        part,
        stored_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        raw_bytes=part.raw_bytes if raw_bytes is None else raw_bytes,
    )
    target.files[f"{m.backup_id}/{MANIFEST}"] = encode_manifest(
        msgspec.structs.replace(m, parts=[forged, *m.parts[1:]])
    )


def _zstd(raw: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(raw)


async def test_decoder_catches_what_a_hash_cannot_see() -> None:
    """Parts forged with a matching manifest: the format's own checks (one zstd frame,
    the raw size, the record count, whole lines) still refuse them."""
    target = MemoryTarget()
    m = await _write(target, 200, part_size=1 << 20)
    data = target.files[m.parts[0].name]
    short = b"".join(msgspec.json.encode(r) + b"\n" for r in list(_records(200))[:199])
    cases = [
        ("after the end of its zstd frame", data + data, None),
        ("holds 199 records", _zstd(short), len(short)),
        ("ends inside a record", _zstd(b'{"a": 1}\n{"b"'), 13),
        ("is not valid zstd", b"definitely not zstd" * 3, None),
    ]
    for problem, forged, raw_bytes in cases:
        _forge(target, m, forged, raw_bytes)
        reader = await ArchiveReader.open(target, m.backup_id)
        with pytest.raises(BackupCorrupt, match=problem) as caught:
            await reader.verify()
        assert caught.value.details["part"] == m.parts[0].name


async def test_inflating_past_the_recorded_size_is_refused() -> None:
    target = MemoryTarget()
    m = await _write(target, 200, part_size=1 << 20)
    # 1 GiB of newlines in 32 KiB.
    squeeze, newlines = zstandard.ZstdCompressor(level=19).compressobj(), b"\n" * (16 << 20)
    _forge(target, m, b"".join(squeeze.compress(newlines) for _ in range(64)) + squeeze.flush())
    del newlines
    reader = await ArchiveReader.open(target, m.backup_id)
    tracemalloc.start()
    try:
        with pytest.raises(BackupCorrupt, match="inflates past"):
            await reader.verify()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 48 << 20  # one 1 KiB slice's output at most, not 1 GiB


async def test_200k_records_stream_in_bounded_memory() -> None:
    """The records come from a generator and go to a target that keeps only hashes:
    neither the records nor a part is ever held whole."""
    target = MemoryTarget(keep_bytes=False)
    produced = 0

    def source() -> Iterator[dict[str, Any]]:
        nonlocal produced
        for record in _records(200_000):
            produced += 1
            yield record

    tracemalloc.start()
    try:
        async with ArchiveWriter(target, SOURCE, part_size=16 << 20) as w:
            await w.add_records("memories", source())
            m = await w.commit()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    raw = m.sections["memories"].raw_bytes
    assert produced == m.records("memories") == 200_000
    assert raw > 40 << 20 and m.sections["memories"].parts >= 3
    assert peak < 12 << 20, f"peak {peak} bytes for {raw} raw bytes"


async def test_catalog_lists_complete_incomplete_and_corrupt() -> None:
    target = MemoryTarget()
    full = await _write(target, 100, at=T0)
    inc = None
    async with ArchiveWriter(
        target, SOURCE, kind="incremental", parent=full.backup_id, created_at=T0.replace(day=2)
    ) as w:
        await w.add_records("memories", _records(10))
        inc = await w.commit()
    # A backup that died before its manifest, and one whose manifest is garbage.
    target.files["20260103T020000Z-0000000a/memories-000000.jsonl.zst"] = b"x"
    target.files["20260104T020000Z-0000000b/manifest.json"] = b"{not json"
    target.files["not-a-backup/file"] = b"ignored"
    listed = await Catalog(target).list()
    assert [(b.id, b.status) for b in listed] == [
        (full.backup_id, BackupStatus.COMPLETE),
        (inc.backup_id, BackupStatus.COMPLETE),
        ("20260103T020000Z-0000000a", BackupStatus.INCOMPLETE),
        ("20260104T020000Z-0000000b", BackupStatus.CORRUPT),
    ]
    assert (listed[1].kind, listed[1].parent, listed[1].memories) == (
        "incremental",
        full.backup_id,
        10,
    )
    assert listed[0].stored_bytes == full.stored_bytes and listed[0].users == 1
    chain = await Catalog(target).chain(inc.backup_id)
    assert [c.backup_id for c in chain] == [full.backup_id, inc.backup_id]
    reports = await Catalog(target).verify(inc.backup_id)
    assert [r.records for r in reports] == [100, 10]


async def test_catalog_delete_takes_the_manifest_first() -> None:
    target = MemoryTarget()
    full = await _write(target, 100)
    deleted: list[str] = []
    real_delete = target.delete

    async def spy(name: str) -> None:
        deleted.append(name)
        await real_delete(name)

    target.delete = spy  # type: ignore[method-assign]
    assert await Catalog(target).delete(full.backup_id) == len(full.parts) + 1
    assert deleted[0] == f"{full.backup_id}/{MANIFEST}"
    assert target.files == {}


async def test_a_chain_with_a_missing_parent_says_so() -> None:
    target = MemoryTarget()
    full = await _write(target, 10)
    async with ArchiveWriter(target, SOURCE, kind="incremental", parent=full.backup_id) as w:
        inc = await w.commit()
    await Catalog(target).delete(full.backup_id)
    with pytest.raises(BackupNotFound, match=f"needs its parent {full.backup_id}"):
        await Catalog(target).chain(inc.backup_id)
