"""The security edge of every request: request id, client address, API key, lockout,
rate limit, security headers, and the audit line of audited routes.

Order, for a route that is not public: a client under lockout gets 429 without
its key being looked at; a missing or bad key is 401 and counts as a failure of
the client (and of the key id it names); a good key is rate limited per key. A
key's holder is never locked out by someone else's failures against it: a locked
key still accepts its own secret (256 random bits; nobody guesses it), while
wrong secrets for it get 429. Requests refused during a lockout are counted, not
audited one by one, so a flood cannot fill the audit log.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import msgspec
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from membank_server.config import SecuritySettings
from membank_server.domain.errors import MembankError
from membank_server.domain.ports import AuditLog, Throttle
from membank_server.domain.security import AuditEntry, Principal, RateDecision, Role
from membank_server.domain.security import Scope as KeyScope
from membank_server.services.access import AccessService, key_id_of

__all__ = ["ANONYMOUS_ADMIN", "SecurityMiddleware", "client_address"]

_log = logging.getLogger("membank.security")

#: Who a request acts as when authentication is turned off (``security.auth=false``).
ANONYMOUS_ADMIN = Principal("anonymous", Role.ADMIN, KeyScope.ALL)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
_API_HEADERS = [
    (b"cache-control", b"no-store"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
]
_PUBLIC_PREFIXES = ("/health", "/ready", "/schema")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def client_address(scope: Scope, trusted: Sequence[Network]) -> str:
    """The client's IP: the peer, or, when the peer is a trusted proxy, the last
    address in X-Forwarded-For that is not a trusted proxy."""
    peer = scope.get("client")
    address = str(peer[0]) if peer else "unknown"
    if not trusted or not _within(address, trusted):
        return address
    forwarded = ",".join(
        v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"x-forwarded-for"
    )
    hops = [h.strip() for h in forwarded.split(",") if h.strip()]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return address
        address = hop
        if not _within(hop, trusted):
            return hop
    return address


def _within(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in n for n in networks)


def _error(status: int, code: str, message: str) -> bytes:
    return msgspec.json.encode({"error": {"code": code, "message": message, "details": {}}})


class SecurityMiddleware(ASGIMiddleware):
    """Authentication, lockout, rate limits, security headers and audit (see module doc)."""

    def __init__(
        self,
        settings: SecuritySettings,
        access: AccessService | None,
        throttle: Throttle | None,
        audit: AuditLog | None,
    ) -> None:
        self.settings = settings
        if settings.auth and (access is None or throttle is None):
            raise ValueError("authentication needs the access service and a throttle")
        self.access = access
        self.throttle: Throttle = throttle or _NoThrottle()
        self.audit = audit
        self.trusted = [ipaddress.ip_network(c, strict=False) for c in settings.trusted_proxies]
        rate = settings.rate_limit
        self.rate = (rate.requests_per_second, rate.burst) if rate.enabled else None
        self.lockout = settings.lockout.enabled

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        given = _header(scope, b"x-request-id")
        request_id = given if given and _REQUEST_ID.match(given) else uuid.uuid4().hex
        client = client_address(scope, self.trusted)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["client"] = client
        extra = [*_HEADERS, (b"x-request-id", request_id.encode())]
        if not scope["path"].startswith("/schema"):
            extra += _API_HEADERS
        opt = scope["route_handler"].opt
        public = opt.get("public") or scope["path"].startswith(_PUBLIC_PREFIXES)
        if not self.settings.auth:
            scope["user"] = ANONYMOUS_ADMIN
        elif not public:
            refused = await self._authenticate(scope, client, request_id, extra)
            if refused is not None:
                status, code, message, headers = refused
                await _reply(send, status, _error(status, code, message), extra + headers)
                return
        action = opt.get("audit")
        if action is None:
            await next_app(scope, receive, _with_headers(send, extra))
            return

        async def audited(message: Message) -> None:
            if message["type"] == "http.response.start":
                await self._record(scope, str(action), int(message["status"]))
            await _with_headers(send, extra)(message)

        await next_app(scope, receive, audited)

    async def _authenticate(
        self, scope: Scope, client: str, request_id: str, extra: list[tuple[bytes, bytes]]
    ) -> tuple[int, str, str, list[tuple[bytes, bytes]]] | None:
        """Set ``scope["user"]``; or say what to answer instead."""
        if self.lockout:
            left = await self.throttle.locked(f"client:{client}")
            if left is not None:
                return _locked(left, "too many failed authentications from this client")
        auth = _header(scope, b"authorization") or ""
        scheme, _, token = auth.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            await self._fail(scope, client, request_id, None, "auth.missing_key")
            return (
                401,
                "unauthorized",
                "send an API key: Authorization: Bearer <key>",
                [(b"www-authenticate", b'Bearer realm="membank"')],
            )
        assert self.access is not None  # checked in __init__
        principal = await self.access.authenticate(token)
        if principal is None:
            claimed = key_id_of(token)
            if self.lockout and claimed is not None:
                left = await self.throttle.locked(f"key:{claimed}")
                if left is not None:
                    await self.throttle.failed(f"client:{client}")
                    return _locked(left, "too many failed authentications for this key")
            await self._fail(scope, client, request_id, claimed, "auth.bad_key")
            return (
                401,
                "unauthorized",
                "the API key is unknown, expired or revoked",
                [(b"www-authenticate", b'Bearer realm="membank", error="invalid_token"')],
            )
        scope["user"] = principal
        return await self._limit(principal, extra)

    async def _limit(
        self, principal: Principal, extra: list[tuple[bytes, bytes]]
    ) -> tuple[int, str, str, list[tuple[bytes, bytes]]] | None:
        if self.rate is None:
            return None
        per_second = principal.rate_per_second or self.rate[0]
        burst = principal.burst or self.rate[1]
        decision = await self.throttle.hit(principal.key_id, per_second, burst)
        headers = _rate_headers(decision, per_second, burst)
        if decision.allowed:
            extra.extend(headers)
            return None
        retry = max(1, math.ceil(decision.reset_seconds))
        return (
            429,
            "too_many_requests",
            f"rate limit of {burst} requests per {max(1, round(burst / per_second))}s "
            f"for this key; retry after {retry}s",
            [*headers, (b"retry-after", str(retry).encode())],
        )

    async def _fail(
        self, scope: Scope, client: str, request_id: str, key_id: str | None, action: str
    ) -> None:
        details: dict[str, Any] = {"path": scope["path"], "method": scope.get("method", "")}
        if self.lockout:
            started = await self.throttle.failed(f"client:{client}")
            if started is not None:
                details["client_locked_seconds"] = started
            if key_id is not None:
                started = await self.throttle.failed(f"key:{key_id}")
                if started is not None:
                    details["key_locked_seconds"] = started
        await self._append(
            AuditEntry(
                at=datetime.now(UTC),
                request_id=request_id,
                actor="anonymous",
                client=client,
                action=action,
                target=f"key:{key_id}" if key_id else "",
                result="denied",
                status=401,
                details=details,
            )
        )

    async def _record(self, scope: Scope, action: str, status: int) -> None:
        state = scope.get("state", {})
        principal = scope.get("user")
        actor = principal.key_id if isinstance(principal, Principal) else "anonymous"
        result = "ok" if status < 400 else "denied" if status in (401, 403, 404) else "failed"
        await self._append(
            AuditEntry(
                at=datetime.now(UTC),
                request_id=state.get("request_id", ""),
                actor=actor,
                client=state.get("client", ""),
                action=action,
                target=str(state.get("audit_target") or _target(scope)),
                result=result,
                status=status,
                details=dict(state.get("audit_details", {})),
            )
        )

    async def _append(self, entry: AuditEntry) -> None:
        # The audit line is written before the answer leaves; if it cannot be, the
        # failure is logged and the answer still goes (the action already happened).
        if self.audit is None:
            return
        try:
            await self.audit.append(entry)
        except MembankError as exc:
            _log.error("audit log append failed for %s %s: %s", entry.action, entry.target, exc)


class _NoThrottle:
    """Stands in when authentication is off: nothing is locked or limited."""

    async def locked(self, subject: str) -> float | None:
        return None

    async def failed(self, subject: str) -> float | None:
        return None

    async def hit(self, key_id: str, per_second: float, burst: int) -> RateDecision:
        return RateDecision(True, burst, burst, 0.0)

    async def aclose(self) -> None:
        return None


def _target(scope: Scope) -> str:
    """What an audited request acted on: its path parameters and ``user_id``."""
    parts = [f"{k}={v}" for k, v in scope.get("path_params", {}).items()]
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    parts += [f"user_id={u}" for u in query.get("user_id", [])[:1]]
    return " ".join(parts)


def _locked(left: float, why: str) -> tuple[int, str, str, list[tuple[bytes, bytes]]]:
    retry = max(1, math.ceil(left))
    return (
        429,
        "too_many_requests",
        f"{why}; locked out, retry after {retry}s",
        [(b"retry-after", str(retry).encode())],
    )


def _rate_headers(d: RateDecision, per_second: float, burst: int) -> list[tuple[bytes, bytes]]:
    window = max(1, round(burst / per_second))
    return [
        (b"ratelimit-limit", str(d.limit).encode()),
        (b"ratelimit-remaining", str(d.remaining).encode()),
        (b"ratelimit-reset", str(max(0, math.ceil(d.reset_seconds))).encode()),
        (b"ratelimit-policy", f"{burst};w={window}".encode()),
    ]


def _with_headers(send: Send, extra: list[tuple[bytes, bytes]]) -> Send:
    async def sender(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), *extra]
        await send(message)

    return sender


async def _reply(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
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
