"""S3Target: backups in an S3 bucket (AWS, or an S3-compatible at ``endpoint_url``).

boto3 is synchronous, so every call runs in a worker thread, waited for even when the
caller is cancelled (an abort never races a part still uploading).
A file is written with one ``PutObject`` when it fits in a part, else as a multipart
upload fed ``part_size`` bytes at a time (memory stays one part, whatever the file's
size); any failure, cancellation included, aborts the multipart upload, so nothing is
visible under the name and no parts are billed. An abort that cannot reach the bucket
is noted on the error and left to :meth:`S3Target.cleanup`.

Retries are botocore's ``standard`` mode, bounded by ``retries``. Checksums are
computed only when an operation requires them (``when_required``): S3-compatibles
such as SeaweedFS reject the CRC trailers newer botocore sends by default; the
manifest's SHA-256 of every part is the end-to-end check. Errors become domain errors
naming the bucket, key and S3 error code, never a credential.
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import logging
import re
from collections.abc import AsyncIterable, AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from urllib3.exceptions import HTTPError

from membank_server.archive._names import check_name, check_prefix
from membank_server.archive._threads import in_thread
from membank_server.domain.backup import StoredFile
from membank_server.domain.errors import (
    BackupError,
    BackupNotFound,
    BackupTargetUnavailable,
    ConfigError,
    MembankError,
)

__all__ = ["S3Target"]

_log = logging.getLogger("membank.archive")
MiB = 1024 * 1024
#: S3 refuses parts under 5 MiB (but the last) and over 5 GiB.
_MIN_PART, _MAX_PART = 5 * MiB, 5 * 1024 * MiB
_READ_CHUNK = 1024 * 1024
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_ERRORS = (BotoCoreError, ClientError, HTTPError, OSError)
_MISSING = frozenset({"NoSuchKey", "NotFound", "404"})
_BUSY = frozenset({"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout"})


class S3Target:
    """The ``BackupTarget`` port over an S3 bucket and key prefix.

    Args:
        bucket: The bucket; it must exist.
        prefix: Key prefix every name is put under (``membank/prod``); may be empty.
        endpoint_url: An S3-compatible's URL (SeaweedFS, MinIO, R2); None for AWS.
        region: The bucket's region; None lets boto3 decide.
        access_key: With ``secret_key``; None uses boto3's credential chain.
        secret_key: Kept only inside the boto3 client, never in a repr or message.
        retries: Retries of one request after a connection error, 5xx or throttle.
        part_size: Bytes per multipart part (5 MiB to 5 GiB); the memory one put uses.
        connect_timeout: Seconds to connect before a retry.
        read_timeout: Seconds to wait for an answer before a retry.
        addressing_style: ``path`` for most S3-compatibles, ``virtual`` or ``auto``.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        retries: int = 3,
        part_size: int = 8 * MiB,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        addressing_style: Literal["auto", "path", "virtual"] = "auto",
    ) -> None:
        if not _BUCKET.match(bucket):
            raise ConfigError(f"not a valid S3 bucket name: {bucket!r}")
        if not _MIN_PART <= part_size <= _MAX_PART:
            raise ConfigError(f"S3 part size must be 5 MiB to 5 GiB, got {part_size} bytes")
        if retries < 0:
            raise ConfigError(f"S3 retries must be 0 or more, got {retries}")
        prefix = prefix.strip("/")
        check_prefix(prefix)
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint_url = endpoint_url
        self.part_size = part_size
        self._keys = f"{prefix}/" if prefix else ""
        self._client_args: dict[str, Any] = {
            "endpoint_url": endpoint_url,
            "region_name": region,
            "aws_access_key_id": access_key,
            "aws_secret_access_key": secret_key,
            "config": Config(
                retries={"max_attempts": retries, "mode": "standard"},
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                s3={"addressing_style": addressing_style},
            ),
        }
        self._s3: Any = None
        self._lock = asyncio.Lock()

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def __repr__(self) -> str:
        where = f", endpoint_url={self.endpoint_url!r}" if self.endpoint_url else ""
        return f"S3Target({self.url!r}{where})"

    async def _client(self) -> Any:
        # Made on first use, in a thread: building a client reads botocore's service
        # models from disk (and, without explicit keys, the credential chain).
        async with self._lock:
            if self._s3 is None:
                if not self._client_args:
                    raise BackupError(f"{self.url}: the target is closed")
                args = self._client_args
                self._s3 = await in_thread(boto3.session.Session().client, "s3", **args)
                self._client_args = {}  # the secret now lives only in the client
        return self._s3

    def _error(self, exc: BaseException, op: str, name: str) -> MembankError:
        where = f"{self.url}: {op} {name or '(listing)'}"
        details = {"target": self.url, "name": name, "operation": op}
        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code", "unknown"))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            details.update(code=code, http_status=status)
            if code in _MISSING:
                return BackupNotFound(f"{where}: no such file", details)
            if status >= 500 or code in _BUSY:
                return BackupTargetUnavailable(f"{where} failed: {code} (HTTP {status})", details)
            # The server's own message is left out: some echo the access key id.
            return BackupError(f"{where} refused: {code} (HTTP {status})", details)
        # botocore's own messages name the endpoint and the problem, no credential.
        reason = str(exc) if isinstance(exc, BotoCoreError) else type(exc).__name__
        return BackupTargetUnavailable(f"{where} failed: {reason}", details)

    async def _call(self, op: str, name: str, method: str, **kwargs: Any) -> Any:
        client = await self._client()
        try:
            return await in_thread(getattr(client, method), **kwargs)
        except _ERRORS as exc:
            raise self._error(exc, op, name) from exc

    async def put(self, name: str, chunks: AsyncIterable[bytes]) -> StoredFile:
        key = self._keys + check_name(name)
        digest, size, buf = hashlib.sha256(), 0, bytearray()
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []

        async def send(data: bytes) -> None:
            nonlocal upload_id
            if upload_id is None:
                made = await self._call(
                    "put", name, "create_multipart_upload", Bucket=self.bucket, Key=key
                )
                upload_id = str(made["UploadId"])
            number = len(parts) + 1
            sent = await self._call(
                "put",
                name,
                "upload_part",
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                Body=data,
            )
            parts.append({"PartNumber": number, "ETag": sent["ETag"]})

        try:
            async for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                buf += chunk
                while len(buf) >= self.part_size:
                    await send(bytes(buf[: self.part_size]))
                    del buf[: self.part_size]
            if upload_id is None:
                await self._call(
                    "put", name, "put_object", Bucket=self.bucket, Key=key, Body=bytes(buf)
                )
            else:
                if buf:
                    await send(bytes(buf))
                await self._call(
                    "put",
                    name,
                    "complete_multipart_upload",
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                )
        except BaseException as exc:
            if upload_id is not None:
                await self._abort(key, upload_id, exc)
            raise
        return StoredFile(name, size, digest.hexdigest())

    async def _abort(self, key: str, upload_id: str, cause: BaseException) -> None:
        try:
            await in_thread(
                self._s3.abort_multipart_upload, Bucket=self.bucket, Key=key, UploadId=upload_id
            )
        except _ERRORS as exc:
            # The put's own error is what the caller must see; this one rides along.
            note = (
                f"the multipart upload of {key} could not be aborted "
                f"({type(exc).__name__}); S3Target.cleanup() removes it later"
            )
            cause.add_note(note)
            _log.warning("%s: %s", self.url, note)

    async def get(self, name: str) -> AsyncIterator[bytes]:
        key = self._keys + check_name(name)
        answer = await self._call("get", name, "get_object", Bucket=self.bucket, Key=key)
        body = answer["Body"]
        try:
            while True:
                try:
                    chunk = await in_thread(body.read, _READ_CHUNK)
                except _ERRORS as exc:
                    raise self._error(exc, "get", name) from exc
                if not chunk:
                    return
                yield chunk
        finally:
            body.close()

    def _list_keys(self, client: Any, prefix: str) -> list[str]:
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._keys + prefix
        )
        names = (
            obj["Key"][len(self._keys) :] for page in pages for obj in page.get("Contents", [])
        )
        return sorted(n for n in names if _valid(n))

    async def list(self, prefix: str = "") -> list[str]:
        client = await self._client()
        try:
            return await in_thread(self._list_keys, client, check_prefix(prefix))
        except _ERRORS as exc:
            raise self._error(exc, "list", prefix) from exc

    async def exists(self, name: str) -> bool:
        key = self._keys + check_name(name)
        try:
            await self._call("head", name, "head_object", Bucket=self.bucket, Key=key)
        except BackupNotFound:
            return False
        return True

    async def delete(self, name: str) -> None:
        key = self._keys + check_name(name)
        await self._call("delete", name, "delete_object", Bucket=self.bucket, Key=key)

    def _stale_uploads(self, client: Any, older_than: float) -> builtins.list[tuple[str, str]]:
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than)
        pages = client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=self._keys
        )
        return [
            (up["Key"], up["UploadId"])
            for page in pages
            for up in page.get("Uploads", [])
            if up["Initiated"] <= cutoff
        ]

    async def cleanup(self, older_than: float = 86_400.0) -> int:
        """Abort multipart uploads under the prefix started over ``older_than`` seconds ago."""
        client = await self._client()
        try:
            stale = await in_thread(self._stale_uploads, client, older_than)
        except _ERRORS as exc:
            raise self._error(exc, "cleanup", "") from exc
        for key, upload_id in stale:
            await self._call(
                "cleanup",
                key,
                "abort_multipart_upload",
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
            )
        return len(stale)

    async def aclose(self) -> None:
        if self._s3 is not None:
            await in_thread(self._s3.close)
            self._s3 = None


def _valid(name: str) -> bool:
    """Keys under the prefix that are not membank names (folder markers, strays) are skipped."""
    try:
        check_name(name)
    except MembankError:
        return False
    return True
