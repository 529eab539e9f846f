"""The security edge of every request: request id, client address, API key, lockout,
rate limit, security headers, and the audit line of audited routes.

For a route that is not public: a usable key passes (then its rate limit applies),
whoever sends it and however many failures its client has had, so nobody can lock
a real user out by failing from the same address or against the same key. A
missing or bad key is 401 and counts as a failure of the client (and of the key id
it names); after too many, that client's (or that key id's) further failures get
429 with ``Retry-After`` and are neither counted again nor audited one by one, so a
flood cannot fill the audit log or lengthen its own lockout. Keys are 256 random
bits: lockout slows and reports guessing, it is not what stops it.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from membank_server.api._http import clean, client_address, error_body, header, reply, with_headers
from membank_server.api.audit_note import AuditNote, audit_note
from membank_server.config import SecuritySettings
from membank_server.domain.errors import MembankError
from membank_server.domain.ports import Throttle
from membank_server.domain.security import AuditEntry, Principal, RateDecision, Role
from membank_server.domain.security import Scope as KeyScope
from membank_server.services.access import AccessService, key_id_of
from membank_server.services.audit import AuditTrail

__all__ = ["ANONYMOUS_ADMIN", "SecurityMiddleware", "client_address"]

Refusal = tuple[int, str, str, list[tuple[bytes, bytes]]]

_log = logging.getLogger("membank.security")

#: Who a request acts as when authentication is turned off (``security.auth=false``).
ANONYMOUS_ADMIN = Principal("anonymous", Role.ADMIN, KeyScope.ALL)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$(?!\n)")
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


class SecurityMiddleware(ASGIMiddleware):
    """Authentication, lockout, rate limits, security headers and audit (see module doc)."""

    def __init__(
        self,
        settings: SecuritySettings,
        access: AccessService | None,
        throttle: Throttle | None,
        audit: AuditTrail,
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
        self.in_flight = _InFlight(
            settings.max_concurrent_per_key, settings.max_concurrent_batches_per_key
        )

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        given = header(scope, b"x-request-id")
        request_id = given if given and _REQUEST_ID.match(given) else uuid.uuid4().hex
        client = client_address(scope, self.trusted)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["client"] = client
        path = scope["path"]
        docs = path == "/schema" or path.startswith("/schema/")
        extra = [*_HEADERS, (b"x-request-id", request_id.encode())]
        if not docs:
            extra += _API_HEADERS
        opt = scope["route_handler"].opt
        if not self.settings.auth:
            scope["user"] = ANONYMOUS_ADMIN
        elif not (opt.get("public") or docs):
            try:
                refused = await self._authenticate(scope, client, request_id, extra)
            except MembankError as exc:
                # The key store or Redis failed: say so without its internals.
                _log.error("authentication unavailable: %s", exc.message)
                refused = (
                    503,
                    "unavailable",
                    "authentication is unavailable right now; retry shortly",
                    [(b"retry-after", b"1")],
                )
            if refused is not None:
                status, code, message, headers = refused
                await reply(send, status, error_body(code, message), extra + headers)
                return
        principal = scope.get("user")
        batch = bool(opt.get("batch"))
        key_id = (
            principal.key_id if isinstance(principal, Principal) and self.settings.auth else None
        )
        if key_id is not None and not self.in_flight.enter(key_id, batch):
            limit = self.in_flight.batch_limit if batch else self.in_flight.limit
            what = "batch writes" if batch else "requests"
            body = error_body(
                "too_many_concurrent", f"this key already has {limit} {what} in flight"
            )
            await reply(send, 429, body, [*extra, (b"retry-after", b"1")])
            return
        try:
            await self._forward(scope, receive, send, next_app, opt.get("audit"), extra)
        finally:
            if key_id is not None:
                self.in_flight.leave(key_id, batch)

    async def _forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        next_app: ASGIApp,
        action: object,
        extra: list[tuple[bytes, bytes]],
    ) -> None:
        if action is None:
            await next_app(scope, receive, with_headers(send, extra))
            return

        async def audited(message: Message) -> None:
            if message["type"] == "http.response.start":
                await self._record(scope, str(action), int(message["status"]))
            await with_headers(send, extra)(message)

        await next_app(scope, receive, audited)

    async def _authenticate(
        self, scope: Scope, client: str, request_id: str, extra: list[tuple[bytes, bytes]]
    ) -> Refusal | None:
        """Set ``scope["user"]``; or say what to answer instead."""
        auth = header(scope, b"authorization") or ""
        scheme, _, token = auth.partition(" ")
        token = token.strip()
        principal = None
        if scheme.lower() == "bearer" and token:
            assert self.access is not None  # checked in __init__
            principal = await self.access.authenticate(token)
        if principal is not None:
            scope["user"] = principal
            return await self._limit(principal, extra)
        claimed = key_id_of(token) if token else None
        if self.lockout:
            left = await self.throttle.locked(f"client:{client}")
            why = "too many failed authentications from this client"
            if left is None and claimed is not None:
                left = await self.throttle.locked(f"key:{claimed}")
                why = "too many failed authentications for this key"
            if left is not None:
                return _locked(left, why)
        if not token:
            await self._fail(scope, client, request_id, None, "auth.missing_key")
            return (
                401,
                "unauthorized",
                "send an API key: Authorization: Bearer <key>",
                [(b"www-authenticate", b'Bearer realm="membank"')],
            )
        await self._fail(scope, client, request_id, claimed, "auth.bad_key")
        return (
            401,
            "unauthorized",
            "the API key is unknown, expired or revoked",
            [(b"www-authenticate", b'Bearer realm="membank", error="invalid_token"')],
        )

    async def _limit(
        self, principal: Principal, extra: list[tuple[bytes, bytes]]
    ) -> Refusal | None:
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
        details: dict[str, Any] = {
            "path": clean(scope["path"]),
            "method": clean(str(scope.get("method", ""))),
        }
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
        note = audit_note(scope)
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
                target=clean(note.target or _target(scope, note)),
                result=result,
                status=status,
                details=dict(note.details),
            )
        )

    async def _append(self, entry: AuditEntry) -> None:
        # The audit line is written before the answer leaves; if it cannot be, the
        # failure is logged and the answer still goes (the action already happened).
        await self.audit.record(entry)


class _InFlight:
    """Requests in flight per key on this instance, batch writes counted apart."""

    def __init__(self, limit: int, batch_limit: int) -> None:
        self.limit, self.batch_limit = limit, batch_limit
        self._all: dict[str, int] = {}
        self._batches: dict[str, int] = {}

    def enter(self, key_id: str, batch: bool) -> bool:
        if self._all.get(key_id, 0) >= self.limit:
            return False
        if batch and self._batches.get(key_id, 0) >= self.batch_limit:
            return False
        self._all[key_id] = self._all.get(key_id, 0) + 1
        if batch:
            self._batches[key_id] = self._batches.get(key_id, 0) + 1
        return True

    def leave(self, key_id: str, batch: bool) -> None:
        for counts, counted in ((self._all, True), (self._batches, batch)):
            if counted:
                left = counts[key_id] - 1
                if left:
                    counts[key_id] = left
                else:
                    del counts[key_id]


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


def _target(scope: Scope, note: AuditNote) -> str:
    """What an audited request acted on: its path parameters, and the user_id the
    tenant check passed (the value the handler used, not a re-read of the query)."""
    parts = [f"{k}={v}" for k, v in scope.get("path_params", {}).items()]
    if note.user is not None:
        parts.append(f"user_id={note.user}")
    return " ".join(parts)


def _locked(left: float, why: str) -> Refusal:
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
