"""Which hosts a load test may target: loopback only, unless the operator says otherwise.

Decided from the URL alone, before anything is sent and without resolving a
name (a name's address can change between the check and the test): an IP in
127.0.0.0/8, ``::1`` or the name ``localhost``; anything else needs
``allow_remote``.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from membank_server.domain.errors import ConfigError

__all__ = ["checked_host", "is_loopback"]


def is_loopback(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ``::1``; no name is ever resolved."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def checked_host(url: str, *, allow_remote: bool) -> str:
    """``url`` without a trailing slash, if a load test may target it.

    Raises:
        ConfigError: Not an http(s) URL with a host, or a host outside the loopback
            range without ``allow_remote``.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"--host must be an http:// or https:// URL with a host, got {url!r}")
    if not allow_remote and not is_loopback(parts.hostname):
        raise ConfigError(
            f"refusing to load {parts.hostname}: it is not on this machine (127.0.0.0/8, ::1 "
            "or localhost); pass --allow-remote to load a server you run elsewhere"
        )
    return url.rstrip("/")
