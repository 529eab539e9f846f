"""The Litestar application: routes, limits, errors, metrics, OpenAPI at /schema."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Request, Response, Router, get
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.prometheus import PrometheusController

from membank_server.api.admin import AdminController, whoami
from membank_server.api.backups import BackupController
from membank_server.api.cache import CacheController
from membank_server.api.controllers import (
    BatchController,
    MemoryController,
    SearchController,
    before_memory_request,
    mark_backend,
)
from membank_server.api.edge import EdgeMiddleware
from membank_server.api.errors import exception_handlers
from membank_server.api.http_metrics import HttpMetrics
from membank_server.api.job_schemas import state_extraction_rules
from membank_server.api.jobs import ExtractController, JobController
from membank_server.api.observe import ObserveController
from membank_server.api.openapi import state_server_rules
from membank_server.api.ops import collection, optimize, ready
from membank_server.api.security import SecurityMiddleware
from membank_server.api.tenancy import Tenancy, admin_only, audit_note, principal_of
from membank_server.config import Settings
from membank_server.domain.errors import NotEnabled
from membank_server.lifecycle import shutdown_report
from membank_server.observability.metrics import (
    REQUEST_BUCKETS,
    multiprocess_dir,
    scrape,
    start_metrics_listener,
)
from membank_server.observability.tracing import Tracing, build_tracing
from membank_server.services.container import Services

__all__ = ["create_app"]


class _Metrics(PrometheusController):
    """Metrics hold no tenant's data, yet their movement tells who is active: admin only
    unless ``security.metrics_public`` (or use the listener at ``server.metrics_address``)."""

    path = "/metrics"
    include_in_schema = False
    guards = [admin_only]

    @get()
    async def get(self) -> Response[bytes]:
        # Every worker's metrics, the process tree and the census (see observability).
        body, content_type = scrape()
        return Response(body, headers={"Content-Type": content_type})


class _PublicMetrics(_Metrics):
    guards = []
    opt = {"public": True}


@asynccontextmanager
async def _recording_failure() -> AsyncIterator[None]:
    """A failure while stopping is recorded for the exit status (see ``lifecycle``)."""
    try:
        yield
    except BaseException as exc:
        shutdown_report.failed = f"{type(exc).__name__}: {exc}"
        raise


@get(
    "/health",
    tags=["ops"],
    summary="Liveness",
    operation_id="health",
    sync_to_thread=False,
    opt={"public": True},
)
def health() -> dict[str, str]:
    return {"status": "ok"}


def _show_admin_key(key: str) -> None:
    # Shown once, on the terminal, never through logging; only its hash is kept.
    sys.stderr.write(
        "\n  membank created the first admin API key; it is shown only this once:\n"
        f"\n      {key}\n\n"
        "  Send it as 'Authorization: Bearer <key>'; make other keys with "
        "'membank keys create'.\n\n"
    )
    sys.stderr.flush()


def _value(value: object) -> Provide:
    def provide() -> object:
        return value

    return Provide(provide, use_cache=True, sync_to_thread=False)


def _enabled(value: object, off: str) -> Provide:
    """A service this server may be configured without: 404 ``not_enabled`` then."""

    def provide() -> object:
        if value is None:
            raise NotEnabled(off)
        return value

    return Provide(provide, use_cache=True, sync_to_thread=False)


def dependencies(services: Services) -> dict[str, Provide]:
    """What handlers receive, by parameter name: services, never the container."""

    def tenancy(request: Request[Any, Any, Any], service: NamedDependency[object]) -> Tenancy:
        # ``service`` is not used: depending on it puts the two in separate batches.
        # Litestar resolves the dependencies of one batch in an anyio task group, two
        # tasks per request on every search: more than both providers cost together.
        return Tenancy(services.access, principal_of(request), audit_note(request.scope))

    return {
        "service": _value(services.memories),
        "tenancy": Provide(tenancy, sync_to_thread=False),
        "readiness": _value(services.readiness),
        "collection": _value(services.collection),
        "cache_admin": _value(services.cache),
        "audit_trail": _value(services.audit),
        "access": _enabled(
            services.access, "authentication is off (security.auth=false): there are no keys"
        ),
        "rotation": _enabled(
            services.rotation, "field encryption is off (security.encryption.enabled=false)"
        ),
        "observe": _enabled(services.observe, "this server was built without its history"),
        "tunables": _enabled(services.tunables, "this server was built without tunables"),
        "backups": _enabled(services.backups, "backups are not built in this process"),
        "backup_schedule": _enabled(
            services.backup_schedule, "backups are not built in this process"
        ),
        "jobs": _value(services.jobs),
        "extraction": _value(services.extraction),
    }


def create_app(
    services: Services, settings: Settings, *, tracing: Tracing | None = None
) -> Litestar:
    """Build the app around the services, which its lifespan starts and stops.

    ``tracing`` replaces the one ``observe.tracing`` would build (tests export in memory).
    """
    o = settings.observe
    if tracing is None and o.tracing:
        tracing = build_tracing(o.tracing_endpoint, o.tracing_sample)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        address = settings.server.metrics_address
        # With several workers the supervisor serves it (`membank serve`), once.
        own = address is not None and multiprocess_dir() is None
        close_listener = start_metrics_listener(address) if address and own else None
        try:
            async with _recording_failure(), services.running() as started:
                if started.admin_key is not None:
                    _show_admin_key(started.admin_key)
                yield
        finally:
            if close_listener is not None:
                close_listener()
            if tracing is not None:
                tracing.shutdown()  # the last spans, flushed

    v1 = Router(
        path="/",
        route_handlers=[
            MemoryController,
            ExtractController,
            JobController,
            SearchController,
            CacheController,
            AdminController,
            ObserveController,
            BackupController,
            collection,
            optimize,
            whoami,
        ],
        request_max_body_size=settings.server.max_body_bytes,
        before_request=before_memory_request,
        after_request=mark_backend,
        security=[{"apiKey": []}],
    )
    batch = Router(
        path="/",
        route_handlers=[BatchController],
        request_max_body_size=settings.server.batch_max_body_bytes,
        before_request=before_memory_request,
        after_request=mark_backend,
        security=[{"apiKey": []}],
    )
    prometheus = HttpMetrics(
        app_name="membank",
        prefix="membank",
        exclude=("/metrics",),
        buckets=tuple(float(b) for b in REQUEST_BUCKETS),
    )
    sec = settings.security
    security = SecurityMiddleware(sec, services.access, services.throttle, services.audit)
    metrics = _PublicMetrics if sec.metrics_public else _Metrics
    cors = CORSConfig(allow_origins=sec.cors_origins) if sec.cors_origins else None
    edge = EdgeMiddleware()
    app = Litestar(
        route_handlers=[v1, batch, health, ready, metrics],
        lifespan=[lifespan],
        dependencies=dependencies(services),
        state=State(
            {
                "backend": services.memories.store.backend,
                "json_max_depth": settings.limits.json_max_depth,
            }
        ),
        exception_handlers=exception_handlers,
        middleware=[edge, *(tracing.middleware if tracing else []), prometheus, security],
        cors_config=cors,
        openapi_config=OpenAPIConfig(
            title="membank",
            version="0.1.0",
            description="A memory bank for AI agents.",
            path="/schema",
            render_plugins=[SwaggerRenderPlugin()],
            components=Components(
                security_schemes={
                    "apiKey": SecurityScheme(
                        type="http",
                        scheme="bearer",
                        description="An API key: Authorization: Bearer mbk_...",
                    )
                }
            ),
        ),
        logging_config=None,
        debug=False,
    )
    for route in app.routes:
        methods = ", ".join(sorted(route.methods)).encode()
        edge.allow[route.path] = edge.allow[route.path_format] = methods
    memories = services.memories
    state_server_rules(app.openapi_schema, memories.embedder.dimension, memories.limits)
    if (extraction := services.extraction) is not None:
        state_extraction_rules(
            app.openapi_schema, extraction.max_messages, extraction.message_max_chars
        )
    return app
