"""How qdrant-client fails: which errors are worth retrying, and how to say what went wrong."""

from __future__ import annotations

import grpc  # type: ignore[import-untyped]
import httpx
from qdrant_client.common.client_exceptions import QdrantException
from qdrant_client.http.exceptions import (
    ApiException,
    ResponseHandlingException,
    UnexpectedResponse,
)

__all__ = ["DRIVER_ERRORS", "describe", "transient"]

_REMOTE = (ApiException, QdrantException, httpx.HTTPError, grpc.RpcError)
# Local mode reports a missing collection, a closed client or a locked folder
# with builtin exceptions.
DRIVER_ERRORS = (*_REMOTE, OSError, RuntimeError, ValueError)
_TRANSIENT_GRPC = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def transient(exc: Exception) -> bool:
    """Whether the same request may succeed if sent again a little later."""
    if isinstance(exc, UnexpectedResponse):
        return exc.status_code is not None and exc.status_code >= 500
    if isinstance(exc, ResponseHandlingException):
        return isinstance(exc.source, httpx.TransportError)
    if isinstance(exc, grpc.RpcError):
        code = getattr(exc, "code", None)
        return callable(code) and bool(code() in _TRANSIENT_GRPC)
    return isinstance(exc, httpx.TransportError)


def describe(exc: BaseException) -> str:
    if isinstance(exc, UnexpectedResponse):
        try:
            detail = str(exc.structured()["status"]["error"])
        except (ValueError, KeyError, TypeError):
            detail = exc.content[:200].decode("utf-8", "replace")
        return f"HTTP {exc.status_code} {exc.reason_phrase}: {detail}"
    if isinstance(exc, ResponseHandlingException):
        return describe(exc.source)
    if isinstance(exc, grpc.RpcError) and callable(getattr(exc, "details", None)):
        return f"gRPC {exc.code().name}: {exc.details()}"
    return str(exc) or type(exc).__name__
