"""Backups end to end on a folder and on S3 (SeaweedFS): round trip, and every kind of
damage to a stored part caught by ``verify`` naming the part, before a restore writes.

A restore verifies the whole backup (chain) first and streams records only after, so
damage found by ``verify`` means nothing was written; the last test shows that order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from membank_server.archive.catalog import Catalog
from membank_server.archive.crypto import AesGcmCipher, BackupKey, PartCipher
from membank_server.archive.manifest import Manifest, Source
from membank_server.archive.reader import ArchiveReader
from membank_server.archive.writer import ArchiveWriter
from membank_server.domain.errors import BackupCorrupt
from membank_server.domain.ports import BackupTarget
from tests.support.backup import chunks_of, read

__all__: list[str] = []

KEY = BackupKey.generate()


@pytest.fixture(params=["clear", "aes"])
def cipher(request: pytest.FixtureRequest) -> PartCipher | None:
    return AesGcmCipher(KEY, chunk_size=4096) if request.param == "aes" else None


def _records(n: int, day: int = 1) -> list[dict[str, Any]]:
    return [
        {"id": i, "user_id": f"u{i % 3}", "content": f"memory {i} of day {day} " * (i % 9)}
        for i in range(n)
    ]


async def _backup(target: BackupTarget, cipher: PartCipher | None, day: int = 1) -> Manifest:
    source = Source(backend="edge", dimension=384, embedder="minilm")
    async with ArchiveWriter(target, source, part_size=8192, cipher=cipher) as w:
        await w.add_records("memories", _records(2000, day))
        await w.add_blob("pg_dump", [b"PGDMP" + bytes(range(256)) * 50])
        return await w.commit({"u0": {"memories": 667}})


async def test_round_trip(backup_target: BackupTarget, cipher: PartCipher | None) -> None:
    target = backup_target
    m = await _backup(target, cipher)
    assert len(m.parts) > 5
    (listed,) = await Catalog(target).list()
    assert (listed.id, listed.complete, listed.memories) == (m.backup_id, True, 2000)
    reader = await ArchiveReader.open(target, m.backup_id, cipher)
    assert (await reader.verify()).records == 2000
    assert [r async for r in reader.records("memories")] == _records(2000)
    assert b"".join([c async for c in reader.blob("pg_dump")]).startswith(b"PGDMP")


async def _flip(target: BackupTarget, m: Manifest) -> str:
    name = m.parts[2].name
    data = bytearray(await read(target, name))
    data[len(data) // 2] ^= 0x40
    await target.put(name, chunks_of(bytes(data)))
    return name


async def _truncate(target: BackupTarget, m: Manifest) -> str:
    name = m.parts[2].name
    await target.put(name, chunks_of((await read(target, name))[:-50]))
    return name


async def _drop(target: BackupTarget, m: Manifest) -> str:
    name = m.parts[2].name
    await target.delete(name)
    return name


async def _swap(target: BackupTarget, m: Manifest) -> str:
    first, second = m.parts[1].name, m.parts[2].name
    a, b = await read(target, first), await read(target, second)
    await target.put(first, chunks_of(b))
    await target.put(second, chunks_of(a))
    return first  # verify reads in order: the first of the two fails first


DAMAGE: dict[str, Callable[[BackupTarget, Manifest], Any]] = {
    "flip": _flip,
    "truncate": _truncate,
    "drop": _drop,
    "swap": _swap,
}


@pytest.mark.parametrize("damage", DAMAGE)
async def test_damage_is_caught_naming_the_part(
    backup_target: BackupTarget, cipher: PartCipher | None, damage: str
) -> None:
    target = backup_target
    m = await _backup(target, cipher)
    damaged = await DAMAGE[damage](target, m)
    reader = await ArchiveReader.open(target, m.backup_id, cipher)
    with pytest.raises(BackupCorrupt) as caught:
        await reader.verify()
    assert caught.value.details["part"] == damaged
    assert damaged in caught.value.message
    # A restore, verifying first, writes nothing.
    restored: list[Any] = []

    async def restore() -> None:
        await Catalog(target).verify(m.backup_id, cipher)
        restored.extend([r async for r in reader.records("memories")])

    with pytest.raises(BackupCorrupt):
        await restore()
    assert restored == []


async def test_a_part_from_another_backup_is_caught(
    backup_target: BackupTarget, cipher: PartCipher | None
) -> None:
    target = backup_target
    one, two = await _backup(target, cipher), await _backup(target, cipher, day=2)
    name = one.parts[0].name
    await target.put(name, chunks_of(await read(target, two.parts[0].name)))
    with pytest.raises(BackupCorrupt, match=name):
        await Catalog(target).verify(one.backup_id, cipher)
    assert len(await Catalog(target).verify(two.backup_id, cipher)) == 1
