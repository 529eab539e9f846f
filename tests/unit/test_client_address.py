"""The client address behind proxies: only trusted proxies' X-Forwarded-For counts."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from membank_server.api.security import client_address

TRUSTED = [ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.0.0.0/8")]


def _scope(peer: str, *forwarded: str) -> Any:
    headers = [(b"x-forwarded-for", f.encode()) for f in forwarded]
    return {"client": (peer, 5000), "headers": headers}


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "expected"),
    [
        ("203.0.113.9", ["1.2.3.4"], TRUSTED, "203.0.113.9"),  # peer not a proxy: ignored
        ("127.0.0.1", ["1.2.3.4"], [], "127.0.0.1"),  # no trusted proxies configured
        ("127.0.0.1", ["1.2.3.4"], TRUSTED, "1.2.3.4"),
        ("127.0.0.1", ["6.6.6.6, 1.2.3.4"], TRUSTED, "1.2.3.4"),  # spoofed left part skipped
        ("127.0.0.1", ["1.2.3.4, 10.1.1.1"], TRUSTED, "1.2.3.4"),  # through two proxies
        ("127.0.0.1", ["6.6.6.6", "1.2.3.4"], TRUSTED, "1.2.3.4"),  # two headers
        ("127.0.0.1", ["not-an-ip"], TRUSTED, "127.0.0.1"),
        ("127.0.0.1", [], TRUSTED, "127.0.0.1"),
        ("127.0.0.1", ["10.2.2.2"], TRUSTED, "10.2.2.2"),  # all trusted: the farthest
        ("127.0.0.1", ["1.2.3.4:5555"], TRUSTED, "1.2.3.4"),  # with a port
        ("127.0.0.1", ["[2001:db8::1]:443"], TRUSTED, "2001:db8::1"),
        ("127.0.0.1", ["[2001:db8::1]"], TRUSTED, "2001:db8::1"),
        ("::ffff:10.0.0.1", ["1.2.3.4"], TRUSTED, "1.2.3.4"),  # IPv4-mapped proxy
        ("::ffff:203.0.113.9", ["1.2.3.4"], TRUSTED, "203.0.113.9"),
    ],
)
def test_client_address(peer: str, forwarded: list[str], trusted: list[Any], expected: str) -> None:
    assert client_address(_scope(peer, *forwarded), trusted) == expected
