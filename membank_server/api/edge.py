"""The outermost middleware: request capture for log redaction, and last-resort answers.

* Whatever is logged while a request runs (an unexpected error's traceback, a
  driver's message quoting a value) is scrubbed of that request's credential
  headers and body values (``observability.redact``). The body chunks are kept by
  reference, not copied, and parsed only if a record is written meanwhile.
* A request still running when shutdown's grace period ends is cancelled by the
  server; it is answered here with a JSON 503 ``shutting_down`` (retry elsewhere or
  later: writes are idempotent by ``Idempotency-Key`` or client id), never the
  server's plain-text 500. A write cut off this way may or may not have been applied.
* An exception that escaped every handler gets the JSON 500 body, logged once.
* ``OPTIONS`` answers name every method of the path in ``Allow`` (Litestar's own
  answer names only the methods of the first handler registered on a path).
"""

from __future__ import annotations

import asyncio
import logging

from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, ReceiveMessage, Scope, Send

from membank_server.api._http import error_body
from membank_server.lifecycle import shutdown_report
from membank_server.observability.redact import capture

__all__ = ["EdgeMiddleware"]

_log = logging.getLogger("membank.api")
_CREDENTIALS = {b"authorization", b"proxy-authorization", b"cookie", b"x-api-key"}


class EdgeMiddleware(ASGIMiddleware):
    """See the module docs. ``allow`` maps a route's path template to its methods; the
    app factory fills it once the routes exist."""

    def __init__(self) -> None:
        self.allow: dict[str, bytes] = {}

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        found = capture(
            value.decode("latin-1")
            for name, value in scope.get("headers", ())
            if name in _CREDENTIALS
        )
        started = False

        async def receiving() -> ReceiveMessage:
            message = await receive()
            if message["type"] == "http.request":
                found.add_body(message.get("body", b""))
            return message

        options = scope.get("method") == "OPTIONS"
        allow = self.allow.get(scope.get("path_template", "")) if options else None

        async def sending(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if allow is not None:
                    headers = [(k, v) for k, v in message.get("headers", ()) if k != b"allow"]
                    message["headers"] = [*headers, (b"allow", allow)]
            await send(message)

        try:
            await next_app(scope, receiving, sending)
        except asyncio.CancelledError:
            shutdown_report.cancelled_requests += 1
            _log.warning(
                "request cancelled at shutdown: %s %s", scope.get("method"), scope.get("path")
            )
            if not started:
                await _answer(send, 503, "shutting_down", "the server is shutting down; retry")
        except Exception:  # noqa: BLE001 - the last resort: logged, answered, not lost
            _log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await _answer(send, 500, "internal_error", "the server failed unexpectedly")


async def _answer(send: Send, status: int, code: str, message: str) -> None:
    body = error_body(code, message)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 503:
        headers.append((b"retry-after", b"1"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
