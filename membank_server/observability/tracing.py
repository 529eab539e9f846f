"""Optional OpenTelemetry tracing: one span per request, exported over OTLP/HTTP.

Off unless ``observe.tracing = true``; it needs the ``tracing`` extra
(``pip install 'membank[tracing]'``: the OpenTelemetry SDK, the OTLP/HTTP exporter and
the ASGI instrumentation). Spans go in batches to ``observe.tracing_endpoint``
(a collector's ``/v1/traces``), ``observe.tracing_sample`` of them.

Litestar wraps its OpenTelemetry middleware around the whole app, before routing,
so the span starts knowing only the raw path. What a span may say is held to what a
metric may say:

- at the start (:func:`_scrub`), the name is the method alone and every URL attribute
  (old and new semantic conventions) is overwritten with ``unmatched route``: no path
  with its ids, no query string (which holds user ids);
- once routed (:class:`RouteNamer`, inside the routing), the name and URL attributes
  become the route *template* (``GET /v1/memories/{memory_id:uuid}``);
- request and response headers are never captured, and any header attribute an
  environment variable turns on anyway is overwritten with ``[redacted]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from membank_server.domain.errors import ConfigError
from membank_server.observability.redact import REDACTED

__all__ = ["RouteNamer", "Tracing", "build_tracing"]

#: Span attributes that hold the request's URL (old and new semantic conventions).
_URL_KEYS = ("http.route", "http.url", "url.full", "http.target", "url.path")
_QUERY_KEYS = ("url.query",)
_UNROUTED = "unmatched route"


def _set_route(span: Any, route: str) -> None:
    for key in _URL_KEYS:
        span.set_attribute(key, route)


def _span_details(scope: Any) -> tuple[str, dict[str, str]]:
    return str(scope.get("method", "HTTP")).strip() or "HTTP", {"http.route": _UNROUTED}


def _scrub(span: Any, scope: Any) -> None:
    """Server request hook (before routing): no path, no query, no header values."""
    if not span.is_recording():
        return
    _set_route(span, _UNROUTED)
    for key in list(getattr(span, "attributes", None) or {}):
        if key in _QUERY_KEYS or ".header." in key:
            span.set_attribute(key, REDACTED)


class RouteNamer(ASGIMiddleware):
    """Inside the routing: names the request's span after its route template."""

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        from opentelemetry import trace

        span = trace.get_current_span()
        if span.is_recording():
            route = scope.get("path_template") or _UNROUTED
            span.update_name(f"{scope.get('method', 'HTTP')} {route}")
            _set_route(span, route)
        await next_app(scope, receive, send)


class Tracing:
    """The middlewares to add to the app (outer first), and how to flush and stop."""

    def __init__(self, middleware: list[Any], shutdown: Callable[[], None]) -> None:
        self.middleware = middleware
        self.shutdown = shutdown


def build_tracing(
    endpoint: str, sample: float, *, exporter: Any = None, service: str = "membank"
) -> Tracing:
    """The OpenTelemetry middlewares exporting to ``endpoint`` (or to ``exporter``, a
    ``SpanExporter``, when given: tests pass an in-memory one).

    Raises:
        ConfigError: the ``tracing`` extra is not installed.
    """
    try:
        from litestar.plugins.opentelemetry import OpenTelemetryConfig
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
    except ImportError as exc:  # litestar's plugin imports the ASGI instrumentation
        raise ConfigError(
            "setting observe.tracing needs the packages of membank's tracing extra "
            "(opentelemetry-sdk, opentelemetry-exporter-otlp-proto-http, "
            "opentelemetry-instrumentation-asgi)"
        ) from exc
    provider = TracerProvider(
        resource=Resource.create({"service.name": service}),
        sampler=ParentBased(TraceIdRatioBased(sample)),
    )
    provider.add_span_processor(
        BatchSpanProcessor(exporter or OTLPSpanExporter(endpoint=endpoint, timeout=5))
    )
    config = OpenTelemetryConfig(
        tracer_provider=provider,
        scope_span_details_extractor=_span_details,
        server_request_hook_handler=_scrub,
        exclude_spans=["receive", "send"],
        exclude=["/metrics", "/health", "/ready"],
    )
    return Tracing([config.middleware, RouteNamer()], provider.shutdown)
