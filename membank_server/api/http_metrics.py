"""Per-request Prometheus metrics, with the names and labels Litestar's middleware gives.

``membank_requests_total``, ``membank_request_duration_seconds``,
``membank_requests_in_progress`` and ``membank_requests_error_total`` (status >= 500),
labelled ``method``, ``path`` (the route's template), ``status_code`` and
``app_name``, as ``litestar.plugins.prometheus`` makes them (dashboards, ``membank
capacity`` and the observability docs read these). Its middleware builds a Request,
two label dicts and four label look-ups per request; here each route's labelled
series are looked up once and kept, so a request costs two ``inc``, one ``dec``
and one ``observe``.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import Counter, Gauge, Histogram

__all__ = ["HttpMetrics"]

_LABELS = ["method", "path", "status_code", "app_name"]


@functools.cache
def _metrics(prefix: str) -> tuple[Counter, Histogram, Gauge, Counter]:
    # Registered once per process in the default registry that /metrics serves.
    return (
        Counter(f"{prefix}_requests_total", "Total requests", _LABELS),
        Histogram(f"{prefix}_request_duration_seconds", "Request duration, in seconds", _LABELS),
        Gauge(
            f"{prefix}_requests_in_progress",
            "Total requests currently in progress",
            _LABELS,
            multiprocess_mode="livesum",
        ),
        Counter(f"{prefix}_requests_error_total", "Total errors in requests", _LABELS),
    )


class HttpMetrics(ASGIMiddleware):
    """Counts, times and gauges every HTTP request but those under ``exclude``."""

    def __init__(self, app_name: str, prefix: str, exclude: tuple[str, ...]) -> None:
        self.app_name = app_name
        self.exclude = exclude
        self._count, self._time, self._progress, self._errors = _metrics(prefix)
        self._done: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._running: dict[tuple[str, str], Any] = {}

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if scope["type"] != ScopeType.HTTP or scope["path"].startswith(self.exclude):
            await next_app(scope, receive, send)
            return
        method, path = scope["method"], scope["path_template"]
        running = self._running.get((method, path))
        if running is None:
            # In progress is labelled status 200, as Litestar does (it knows no status yet).
            running = self._progress.labels(method, path, 200, self.app_name)
            self._running[(method, path)] = running
        status = 200

        async def noting(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        started = time.perf_counter()
        running.inc()
        try:
            await next_app(scope, receive, noting)
        finally:
            running.dec()
            self._record(method, path, status, time.perf_counter() - started)

    def _record(self, method: str, path: str, status: int, seconds: float) -> None:
        series = self._done.get((method, path, status))
        if series is None:
            labels = (method, path, status, self.app_name)
            series = (self._count.labels(*labels), self._time.labels(*labels))
            if len(self._done) < 10_000:  # routes x methods x statuses: small, but bounded
                self._done[(method, path, status)] = series
        series[0].inc()
        series[1].observe(seconds)
        if status >= 500:
            self._errors.labels(method, path, status, self.app_name).inc()
