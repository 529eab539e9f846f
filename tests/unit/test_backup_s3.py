"""S3Target against moto (no network), and target_from_url: the unit-level checks.
The real thing runs in tests/contract/test_backup_targets.py against SeaweedFS."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from membank_server.archive._threads import in_thread
from membank_server.archive.local import LocalTarget
from membank_server.archive.s3 import S3Target
from membank_server.archive.targets import target_from_url
from membank_server.domain.errors import BackupNotFound, ConfigError

__all__: list[str] = []

MiB = 1024 * 1024
SECRET = "moto-secret-never-shown"


@pytest.fixture
def bucket() -> Iterator[str]:
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="mb-test")
        yield "mb-test"


def _target(prefix: str = "p") -> S3Target:
    return S3Target(
        "mb-test", prefix, region="us-east-1", access_key="moto", secret_key=SECRET, retries=0
    )


async def _chunks(data: bytes, fail: bool = False) -> AsyncIterator[bytes]:
    for at in range(0, len(data), MiB):
        yield data[at : at + MiB]
    if fail:
        raise RuntimeError("source failed")


async def test_multipart_round_trip_and_abort(bucket: str) -> None:
    target = _target()
    data = os.urandom(11 * MiB)
    stored = await target.put("b/part", _chunks(data))
    assert stored.size == len(data)
    assert b"".join([c async for c in target.get("b/part")]) == data
    assert await target.list() == ["b/part"]
    with pytest.raises(RuntimeError):
        await target.put("b/other", _chunks(data, fail=True))
    client = boto3.client("s3", region_name="us-east-1")
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert not await target.exists("b/other")
    with pytest.raises(BackupNotFound):
        [c async for c in target.get("b/other")]
    assert SECRET not in repr(target)
    await target.aclose()


async def test_cleanup_aborts_uploads_under_its_prefix_only(bucket: str) -> None:
    client = boto3.client("s3", region_name="us-east-1")
    client.create_multipart_upload(Bucket=bucket, Key="p/left/over")
    client.create_multipart_upload(Bucket=bucket, Key="elsewhere/not/ours")
    target = _target()
    # (moto dates every upload 2010, so the age limit is tested on the folder target.)
    assert await target.cleanup(older_than=0) == 1
    assert [u["Key"] for u in client.list_multipart_uploads(Bucket=bucket)["Uploads"]] == [
        "elsewhere/not/ours"
    ]
    await target.aclose()


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="part size"):
        S3Target("bucket", part_size=MiB)
    with pytest.raises(ConfigError, match="bucket"):
        S3Target("Bad_Bucket")


def test_target_from_url(tmp_path: Path) -> None:
    s3 = target_from_url("s3://my-bucket/membank/prod/", region="eu-west-1", retries=2)
    assert isinstance(s3, S3Target) and s3.url == "s3://my-bucket/membank/prod"
    assert target_from_url("s3://my-bucket").url == "s3://my-bucket/"
    local = target_from_url(f"file://{tmp_path}/b")
    assert isinstance(local, LocalTarget) and local.root == tmp_path / "b"
    assert isinstance(target_from_url(), LocalTarget)
    assert target_from_url("./backups").url.endswith("/backups")
    for bad in ("s3:///prefix", "ftp://host/x", "file://host/x"):
        with pytest.raises(ConfigError):
            target_from_url(bad)


async def test_a_cancelled_thread_call_ends_before_the_caller_moves_on() -> None:
    started, release, done = threading.Event(), threading.Event(), []

    def slow_write() -> None:
        started.set()
        release.wait(5)
        done.append("written")

    task = asyncio.create_task(in_thread(slow_write))
    await asyncio.to_thread(started.wait, 5)
    task.cancel()
    await asyncio.sleep(0.05)
    assert not task.done()  # still waiting for the thread, not gone while it writes
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert done == ["written"]
