"""Pick a backup target by URL: ``s3://bucket/prefix``, ``file:///path`` or a plain path."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from membank_server.archive.local import LocalTarget
from membank_server.domain.errors import ConfigError
from membank_server.domain.ports import BackupTarget

__all__ = ["DEFAULT_TARGET", "target_from_url"]

#: The top-level ``backups/`` folder of the working directory.
DEFAULT_TARGET = "./backups"


def target_from_url(url: str = DEFAULT_TARGET, **s3_options: Any) -> BackupTarget:
    """The target a ``--target`` value names.

    Args:
        url: ``s3://bucket/prefix`` (an S3 bucket, prefix optional), ``file:///abs/path``
            or a path (``./backups``, ``/var/backups/membank``).
        **s3_options: Keyword arguments of :class:`~membank_server.archive.s3.S3Target`
            (``endpoint_url``, ``region``, ``access_key``, ``secret_key``, ``retries``,
            ``part_size``...); ignored for a folder.

    Raises:
        ConfigError: an unknown scheme, or an S3 URL without a bucket.
    """
    parts = urlsplit(url)
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ConfigError(
                f"backup target {url!r}: an S3 URL needs a bucket (s3://bucket/prefix)"
            )
        # Imported here so a local backup never loads boto3.
        from membank_server.archive.s3 import S3Target

        return S3Target(parts.netloc, parts.path.strip("/"), **s3_options)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(f"backup target {url!r}: a file URL names no host (file:///path)")
        return LocalTarget(Path(unquote(parts.path)))
    if parts.scheme and len(parts.scheme) > 1:  # one letter: a Windows drive
        raise ConfigError(
            f"backup target {url!r}: use s3://bucket/prefix, file:///path or a folder path"
        )
    return LocalTarget(Path(url))
