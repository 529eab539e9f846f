"""One suite over every BackupTarget: a local folder, and S3 on the real SeaweedFS."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from membank_server.archive.local import LocalTarget
from membank_server.archive.s3 import S3Target
from membank_server.domain.errors import (
    BackupError,
    BackupNotFound,
    BackupTargetUnavailable,
    InvalidInput,
)
from membank_server.domain.ports import BackupTarget
from tests.support.backup import chunks_of, read
from tests.support.seaweedfs import S3Service

__all__: list[str] = []

MiB = 1024 * 1024


async def test_put_get_list_exists_delete(backup_target: BackupTarget) -> None:
    target = backup_target
    stored = await target.put("b1/manifest.json", chunks_of(b'{"a": 1}'))
    assert (stored.size, stored.sha256) == (8, hashlib.sha256(b'{"a": 1}').hexdigest())
    await target.put("b1/memories-000000.jsonl.zst", chunks_of(b"x" * 1000))
    await target.put("b2/manifest.json", chunks_of(b"{}"))
    assert await target.list() == [
        "b1/manifest.json",
        "b1/memories-000000.jsonl.zst",
        "b2/manifest.json",
    ]
    assert await target.list("b1/") == ["b1/manifest.json", "b1/memories-000000.jsonl.zst"]
    assert await target.list("b3/") == []
    assert await read(target, "b1/manifest.json") == b'{"a": 1}'
    assert await target.exists("b2/manifest.json")
    await target.delete("b2/manifest.json")
    await target.delete("b2/manifest.json")  # a missing file is no error
    assert not await target.exists("b2/manifest.json")
    assert await target.list() == ["b1/manifest.json", "b1/memories-000000.jsonl.zst"]
    with pytest.raises(BackupNotFound):
        await read(target, "b2/manifest.json")


async def test_put_replaces_and_empty_files(backup_target: BackupTarget) -> None:
    target = backup_target
    await target.put("a/f", chunks_of(b"old"))
    await target.put("a/f", chunks_of(b"new!"))
    assert await read(target, "a/f") == b"new!"
    stored = await target.put("a/empty", chunks_of(b""))
    assert stored.size == 0 and await read(target, "a/empty") == b""


async def test_a_file_bigger_than_a_part_streams_through(backup_target: BackupTarget) -> None:
    target = backup_target
    data = random.Random(1).randbytes(12 * MiB + 12345)  # 3 parts of 5 MiB on S3
    stored = await target.put("big/part.bin", chunks_of(data))
    assert (stored.size, stored.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert await read(target, "big/part.bin") == data
    if isinstance(target, S3Target):
        etag = target._s3.head_object(Bucket=target.bucket, Key=f"{target.prefix}/big/part.bin")
        assert etag["ETag"].strip('"').endswith("-3")  # a multipart upload of 3 parts


async def test_a_failing_source_leaves_nothing(backup_target: BackupTarget) -> None:
    target = backup_target
    await target.put("keep/old", chunks_of(b"old"))

    async def failing() -> AsyncIterator[bytes]:
        async for chunk in chunks_of(os.urandom(7 * MiB)):
            yield chunk
        raise RuntimeError("the store went away")

    with pytest.raises(RuntimeError, match="went away"):
        await target.put("keep/old", failing())
    with pytest.raises(RuntimeError, match="went away"):
        await target.put("new/file", failing())
    assert await target.list() == ["keep/old"]
    assert await read(target, "keep/old") == b"old"
    # Nothing half written behind: the temporary file, the multipart upload are gone.
    assert await target.cleanup(older_than=0) == 0


async def test_a_cancelled_put_leaves_nothing(backup_target: BackupTarget) -> None:
    target = backup_target
    fed = asyncio.Event()

    async def stalls() -> AsyncIterator[bytes]:
        async for chunk in chunks_of(os.urandom(6 * MiB)):
            yield chunk
        fed.set()
        await asyncio.Event().wait()
        yield b"never"

    task = asyncio.create_task(target.put("new/file", stalls()))
    await fed.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await target.list() == []
    assert await target.cleanup(older_than=0) == 0


@pytest.mark.parametrize("name", ["", "../x", "/abs", "a//b", ".hidden", "a/../b", "a b", "a/"])
async def test_bad_names_are_refused(backup_target: BackupTarget, name: str) -> None:
    target = backup_target
    with pytest.raises(InvalidInput):
        await target.put(name, chunks_of(b"x"))


async def test_local_files_are_private_and_renamed_into_place(tmp_path: Path) -> None:
    target = LocalTarget(tmp_path / "backups")
    await target.put("b1/manifest.json", chunks_of(b"{}"))
    path = tmp_path / "backups" / "b1" / "manifest.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "backups" / "b1").stat().st_mode & 0o777 == 0o700
    assert os.listdir(path.parent) == ["manifest.json"]
    await target.delete("b1/manifest.json")
    assert os.listdir(tmp_path / "backups") == []  # the emptied backup folder goes too


async def test_local_cleanup_spares_writes_that_may_still_run(tmp_path: Path) -> None:
    target = LocalTarget(tmp_path)
    (tmp_path / "b1").mkdir()
    (tmp_path / "b1" / ".part.abc123.tmp").write_bytes(b"half")  # as a killed put leaves it
    assert await target.list() == []
    assert await target.cleanup() == 0  # a day's grace: it may belong to a running backup
    assert await target.cleanup(older_than=0) == 1
    assert os.listdir(tmp_path / "b1") == []


async def test_s3_refusals_name_the_problem_not_the_secret(s3: S3Service) -> None:
    wrong = S3Target(
        s3.bucket,
        "x",
        endpoint_url=s3.endpoint,
        access_key=s3.access_key,
        secret_key="not-the-secret-0123456789",
        region="us-east-1",
        retries=0,
    )
    with pytest.raises(BackupError, match="SignatureDoesNotMatch") as caught:
        await wrong.put("a/b", chunks_of(b"x"))
    assert "not-the-secret" not in str(caught.value) and "not-the-secret" not in repr(wrong)
    missing = S3Target(
        "no-such-bucket-here",
        endpoint_url=s3.endpoint,
        access_key=s3.access_key,
        secret_key=s3.secret_key,
        region="us-east-1",
    )
    with pytest.raises(BackupError, match="NoSuchBucket"):
        await missing.list()
    await wrong.aclose()
    await missing.aclose()


async def test_s3_unreachable_is_unavailable() -> None:
    nobody = S3Target(
        "bucket",
        endpoint_url="http://127.0.0.1:9",
        access_key="a",
        secret_key="secret-never-shown",
        region="us-east-1",
        retries=0,
        connect_timeout=1,
    )
    with pytest.raises(BackupTargetUnavailable, match=r"127\.0\.0\.1:9") as caught:
        await nobody.list()
    assert "secret-never-shown" not in str(caught.value)
