"""Helpers for the backup tests: S3 targets on a SeaweedFS, and streaming bytes in and out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from membank_server.archive.s3 import S3Target
from membank_server.domain.ports import BackupTarget
from tests.support.seaweedfs import S3Service

__all__ = ["chunks_of", "read", "s3_target"]

MiB = 1024 * 1024


def s3_target(s3: S3Service, prefix: str, **options: Any) -> S3Target:
    """An S3Target on ``s3``: one retry and 5 MiB parts unless told otherwise."""
    settings: dict[str, Any] = {"retries": 1, "part_size": 5 * MiB, "region": "us-east-1"}
    settings.update(options)
    return S3Target(
        s3.bucket,
        prefix,
        endpoint_url=s3.endpoint,
        access_key=s3.access_key,
        secret_key=s3.secret_key,
        **settings,
    )


async def chunks_of(data: bytes, size: int = 256 * 1024) -> AsyncIterator[bytes]:
    for at in range(0, len(data), size):
        yield data[at : at + size]


async def read(target: BackupTarget, name: str) -> bytes:
    return b"".join([chunk async for chunk in target.get(name)])
