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
    IntegrityError,
    InvalidInput,
    MembankError,
    NotFound,
    PreconditionFailed,
    Unavailable,
)

__all__ = [
    "ERROR_STATUS",
    "error_response",
    "exception_handlers",
    "responses",
]

_log = logging.getLogger("membank.api")

#: The status of each domain error; the most specific class wins.
ERROR_STATUS: dict[type[MembankError], int] = {
    InvalidInput: 422,
    NotFound: 404,
    Conflict: 409,
    PreconditionFailed: 412,
    Forbidden: 403,
    IntegrityError: 500,
    BackupError: 500,
    Unavailable: 503,
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
    503: "unavailable",
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


def _domain(_: Request[Any, Any, Any], exc: MembankError) -> Response[ErrorBody]:
    status = next(
        (s for cls, s in ERROR_STATUS.items() if isinstance(exc, cls)),
        HTTP_500_INTERNAL_SERVER_ERROR,
    )
    if status >= 500:
        _log.error("%s: %s", type(exc).__name__, exc.message)
    headers = {"Retry-After": "1"} if status == 503 else None
    return error_response(status, exc.code, exc.message, exc.details, headers)


def _validation(_: Request[Any, Any, Any], exc: ValidationException) -> Response[ErrorBody]:
    problems = exc.extra if isinstance(exc.extra, list) else []
    text = " ".join(str(p.get("message", "")) for p in problems if isinstance(p, dict))
    if "malformed" in text.lower() or "invalid json" in text.lower():
        return error_response(400, "malformed_json", f"request body is not valid JSON: {text}")
    message = "; ".join(
        f"{p.get('key') or p.get('source') or 'body'}: {p.get('message')}"
        for p in problems
        if isinstance(p, dict)
    ) or str(exc.detail)
    return error_response(422, "invalid_input", message, {"problems": problems})


def _http(_: Request[Any, Any, Any], exc: HTTPException) -> Response[ErrorBody]:
    status = exc.status_code
    code = _HTTP_CODES.get(status, "error" if status >= 500 else "client_error")
    details = {"problems": exc.extra} if exc.extra else None
    return error_response(status, code, str(exc.detail), details, exc.headers)


def _unexpected(_: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    _log.exception("unexpected error", exc_info=exc)
    return error_response(500, "internal_error", "the server failed unexpectedly")


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
    404: "no such memory for this user (also: a user outside the key's scope)",
    409: "the id or Idempotency-Key is taken by another request",
    412: "If-Match does not name the current version",
    413: "request body over the size limit",
    415: "the body is not application/json",
    422: "a value is invalid; details name the field (and the index in a batch)",
    429: "rate limited or locked out; retry after Retry-After seconds",
    503: "storage or embedder not available; retry after Retry-After",
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
