"""File names on a backup target: the one rule every target checks."""

from __future__ import annotations

import re

from membank_server.domain.errors import InvalidInput

__all__ = ["check_name", "check_prefix"]

_SEGMENT = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


def check_name(name: str) -> str:
    """``name`` if it is a relative path of safe segments, else ``InvalidInput``.

    The same rule on every target keeps a name that works on S3 from escaping a
    local folder (``..``, an absolute path) or hiding among temporary files.
    """
    segments = name.split("/")
    if len(name) > 512 or not all(
        _SEGMENT.match(s) and s not in (".", "..") and not s.startswith(".") for s in segments
    ):
        raise InvalidInput(f"not a valid backup file name: {name!r}")
    return name


def check_prefix(prefix: str) -> str:
    """A listing prefix: empty, or a name, or a name followed by ``/``."""
    if prefix:
        check_name(prefix.removesuffix("/"))
    return prefix
