"""S3 killed mid-backup: a private SeaweedFS (the shared one is never harmed) is killed
with ``kill -9`` while a file or a whole backup is being uploaded, then started again
on the same data: no object, no manifest, older backups untouched, and the multipart
upload the dead server kept is found and aborted by ``cleanup``."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from membank_server.archive.catalog import Catalog
from membank_server.archive.manifest import Source
from membank_server.archive.s3 import S3Target
from membank_server.archive.writer import ArchiveWriter
from membank_server.domain.backup import BackupStatus
from membank_server.domain.errors import BackupTargetUnavailable
from tests.support.backup import chunks_of, read, s3_target
from tests.support.seaweedfs import SeaweedProcess

__all__: list[str] = []

MiB = 1024 * 1024
SOURCE = Source(backend="edge", dimension=384)


@pytest.fixture
def weed(tmp_path: Path) -> Iterator[SeaweedProcess]:
    process = SeaweedProcess(tmp_path / "weed").start()
    yield process
    process.kill()


def _target(weed: SeaweedProcess) -> S3Target:
    # Few, short retries: the server is gone, the test need not wait long to hear it.
    return s3_target(weed.service, "backups", retries=1, connect_timeout=1, read_timeout=5)


def _uploads(weed: SeaweedProcess) -> list[dict[str, Any]]:
    client = weed.service.client()
    try:
        found = client.list_multipart_uploads(Bucket=weed.service.bucket, Prefix="backups/")
    finally:
        client.close()
    return list(found.get("Uploads", []))


async def _old_backup(target: S3Target) -> str:
    async with ArchiveWriter(target, SOURCE, part_size=4096) as w:
        await w.add_records("memories", ({"id": i, "text": "old " * 20} for i in range(500)))
        return (await w.commit()).backup_id


async def test_killed_mid_upload_leaves_no_object(weed: SeaweedProcess) -> None:
    target = _target(weed)
    old = await _old_backup(target)
    await target.put("keep/file", chunks_of(b"untouched"))

    async def source() -> AsyncIterator[bytes]:
        for i in range(20):
            if i == 12:  # two 5 MiB parts are in, the third is being gathered
                weed.kill()
            yield os.urandom(MiB)

    with pytest.raises(BackupTargetUnavailable) as caught:
        await target.put("big/file", source())
    assert "could not be aborted" in " ".join(getattr(caught.value, "__notes__", []))
    await target.aclose()

    weed.start()
    target = _target(weed)
    assert not await target.exists("big/file")
    assert await read(target, "keep/file") == b"untouched"
    assert len(await Catalog(target).verify(old)) == 1
    # The dead server kept the upload it could not be told to abort: cleanup finds it.
    assert [u["Key"] for u in _uploads(weed)] == ["backups/big/file"]
    assert await target.cleanup(older_than=0) == 1
    assert _uploads(weed) == []
    await target.aclose()


async def test_killed_mid_backup_is_never_listed_complete(weed: SeaweedProcess) -> None:
    target = _target(weed)
    old = await _old_backup(target)
    written = 0

    def records() -> Iterator[dict[str, Any]]:
        nonlocal written
        for i in range(20_000):
            if i == 5_000:
                weed.kill()
            written += 1
            yield {"id": i, "text": "new " * 20}

    async def back_up() -> None:
        async with ArchiveWriter(target, SOURCE, part_size=16384) as w:
            await w.add_records("memories", records())
            await w.commit()

    with pytest.raises(BackupTargetUnavailable) as caught:
        await back_up()
    assert written > 5_000
    assert "could not be removed" in " ".join(getattr(caught.value, "__notes__", []))
    await target.aclose()

    weed.start()
    target = _target(weed)
    listed = {b.id: b.status for b in await Catalog(target).list()}
    assert listed[old] is BackupStatus.COMPLETE
    (new,) = set(listed) - {old}
    assert listed[new] is BackupStatus.INCOMPLETE  # parts, but no manifest
    assert len(await Catalog(target).verify(old)) == 1
    await Catalog(target).delete(new)
    assert [b.id for b in await Catalog(target).list()] == [old]
    await target.aclose()
