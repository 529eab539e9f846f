"""One table from errors to HTTP answers, all in the ``{"error": {...}}`` body."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from membank_server.api.schemas import ErrorBody, ErrorInfo
from membank_server.domain.errors import (
    BackupError,
    Conflict,
    Forbidden,
    InsufficientStorage,
    IntegrityError,
    InvalidInput,
    MembankError,
    ModelOutputInvalid,
    NotConfigured,
    NotFound,
    PreconditionFailed,
    TooBusy,
    TooLarge,
    Unavailable,
)

__all__ = [
    "ERROR_STATUS",
    "error_response",
    "exception_handlers",
    "responses",
    "status_of",
]

_log = logging.getLogger("membank.api")

#: The status of each domain error; the most specific class wins.
ERROR_STATUS: dict[type[MembankError], int] = {
    InvalidInput: 422,
    TooLarge: 413,
    NotConfigured: 400,
    NotFound: 404,
    Conflict: 409,
    PreconditionFailed: 412,
    Forbidden: 403,
    TooBusy: 429,
    IntegrityError: 500,
    BackupError: 500,
    ModelOutputInvalid: 502,
    Unavailable: 503,
    InsufficientStorage: 507,
}

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    412: "precondition_failed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "too_many_requests",
    502: "bad_gateway",
    503: "unavailable",
    507: "insufficient_storage",
}


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[ErrorBody]:
    return Response(
        ErrorBody(ErrorInfo(code, message, details or {})),
        status_code=status,
        media_type=MediaType.JSON,
        headers=headers,
    )


def status_of(exc: MembankError) -> int:
    """The status of the most specific class of ``exc`` in :data:`ERROR_STATUS`."""
    return next(
        (ERROR_STATUS[cls] for cls in type(exc).__mro__ if cls in ERROR_STATUS),
        HTTP_500_INTERNAL_SERVER_ERROR,
    )


def _domain(_: Request[Any, Any, Any], exc: MembankError) -> Response[ErrorBody]:
    status = status_of(exc)
    if status >= 500:
        _log.error("%s: %s", type(exc).__name__, exc.message)
    retry_after = exc.details.get("retry_after", 1)
    headers = {"Retry-After": str(retry_after)} if status in (429, 503) else None
    return error_response(status, exc.code, exc.message, exc.details, headers)


def _validation(_: Request[Any, Any, Any], exc: ValidationException) -> Response[ErrorBody]:
    problems = exc.extra if isinstance(exc.extra, list) else []
    text = " ".join(str(p.get("message", "")) for p in problems if isinstance(p, dict))
    if "malformed" in text.lower() or "invalid json" in text.lower():
        return error_response(400, "malformed_json", f"request body is not valid JSON: {text}")
    if problems and all(isinstance(p, dict) and p.get("source") == "header" for p in problems):
        # A header the route cannot use (If-Match, Idempotency-Key): a malformed request.
        text = "; ".join(f"{p.get('key')}: {p.get('message')}" for p in problems)
        return error_response(400, "bad_request", f"bad header: {text}", {"problems": problems})
    message = "; ".join(
        f"{p.get('key') or p.get('source') or 'body'}: {p.get('message')}"
        for p in problems
        if isinstance(p, dict)
    ) or str(exc.detail)
    return error_response(422, "invalid_input", message, {"problems": problems})


def _http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[ErrorBody]:
    status = exc.status_code
    if status >= 500:
        # Litestar's own 5xx (a failure inside the framework): as unexpected as any.
        return _unexpected(request, exc)
    code = _HTTP_CODES.get(status, "error" if status >= 500 else "client_error")
    details = {"problems": exc.extra} if exc.extra else None
    return error_response(status, code, str(exc.detail), details, exc.headers)


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    """Log once, with the request's id, method and path (the traceback is rendered
    without locals and redacted: see ``observability``), and answer a bare 500."""
    request_id = request.scope.get("state", {}).get("request_id", "-")
    _log.error(
        "unexpected error in %s %s (request %s)",
        request.method,
        request.scope.get("path", "?"),
        request_id,
        exc_info=exc,
    )
    return error_response(
        500, "internal_error", "the server failed unexpectedly", {"request_id": request_id}
    )


exception_handlers: dict[type[Exception] | int, Any] = {
    MembankError: _domain,
    ValidationException: _validation,
    HTTPException: _http,
    Exception: _unexpected,
}


_DOCUMENTED = {
    400: "malformed request: bad JSON or a bad header",
    401: "no API key, or one that is unknown, expired or revoked",
    403: "the key may not do this (another user's memories, or an admin function)",
    404: "no such memory for this user (also: a user outside the key's scope), or a "
    "feature this server is not configured with (not_enabled)",
    409: "the id or Idempotency-Key is taken by another request",
    412: "If-Match does not name the current version",
    413: "request body over the size limit, or a job over the item limit",
    415: "the body is not application/json",
    422: "a value is invalid; details name the field (and the index in a batch)",
    429: "rate limited or locked out, or the job queue is full; retry after Retry-After seconds",
    502: "the language model answered something that is not the expected JSON",
    503: "storage or embedder not available; retry after Retry-After",
    507: "the store's disk is nearly full: writes are refused until space is freed",
}


def responses(
    *codes: int, others: Mapping[int, ResponseSpec] | None = None
) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the error answers a handler can give: ``codes``, plus 400
    (a malformed request, in our error body) and, as every route but the public ones
    is behind an API key, 401, 403 and 429. ``others`` adds answers besides the
    handler's own success, by status (a duplicate's 200, a background job's 202)."""
    specs = {
        c: ResponseSpec(
            data_container=ErrorBody, description=_DOCUMENTED[c], generate_examples=False
        )
        for c in sorted({*codes, 400, 401, 403, 429})
    }
    specs.update(others or {})
    return specs
