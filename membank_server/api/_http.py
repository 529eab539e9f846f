"""Raw ASGI helpers for the security middleware: the client address, headers, replies."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

import msgspec
from litestar.types import Message, Scope, Send

__all__ = ["Network", "clean", "client_address", "error_body", "header", "reply", "with_headers"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BRACKETED = re.compile(r"^\[([0-9A-Fa-f:.]+)\](?::\d+)?$(?!\n)")
_V4_PORT = re.compile(r"^(\d{1,3}(?:\.\d{1,3}){3}):\d+$(?!\n)")


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address as proxies write it: bare, ``v4:port`` or ``[v6]:port``; an
    IPv4-mapped IPv6 address is its IPv4 address."""
    text = text.strip()
    match = _BRACKETED.match(text) or _V4_PORT.match(text)
    if match:
        text = match.group(1)
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def client_address(scope: Scope, trusted: Sequence[Network]) -> str:
    """The client's IP: the peer, or, when the peer is a trusted proxy, the last
    address in X-Forwarded-For that is not a trusted proxy."""
    peer = scope.get("client")
    raw = str(peer[0]) if peer else "unknown"
    ip = _ip(raw)
    address = str(ip) if ip is not None else raw
    if not trusted or ip is None or not any(ip in n for n in trusted):
        return address
    forwarded = ",".join(
        v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"x-forwarded-for"
    )
    for hop in reversed([h for h in forwarded.split(",") if h.strip()]):
        hop_ip = _ip(hop)
        if hop_ip is None:
            return address
        address = str(hop_ip)
        if not any(hop_ip in n for n in trusted):
            return address
    return address


def clean(text: str, limit: int = 256) -> str:
    """Text from a request made safe for a log or audit line: no control characters
    (a NUL is refused by PostgreSQL), bounded length."""
    return _CONTROL.sub("?", text)[:limit]


def error_body(code: str, message: str) -> bytes:
    """The ``{"error": {...}}`` body, for answers given before a handler runs."""
    return msgspec.json.encode({"error": {"code": code, "message": message, "details": {}}})


def with_headers(send: Send, extra: list[tuple[bytes, bytes]]) -> Send:
    async def sender(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), *extra]
        await send(message)

    return sender


async def reply(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})
