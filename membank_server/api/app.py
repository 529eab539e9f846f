"""The Litestar application: routes, limits, errors, metrics, OpenAPI at /schema."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, MediaType, Response, Router, get
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController

from membank_server.api.admin import AdminController, whoami
from membank_server.api.cache import CacheController
from membank_server.api.controllers import (
    BatchController,
    MemoryController,
    SearchController,
    before_memory_request,
    mark_backend,
)
from membank_server.api.edge import EdgeMiddleware
from membank_server.api.errors import error_response, exception_handlers, responses
from membank_server.api.openapi import state_server_rules
from membank_server.api.schemas import ErrorBody
from membank_server.api.security import SecurityMiddleware
from membank_server.api.tenancy import admin_only
from membank_server.config import Settings
from membank_server.lifecycle import shutdown_report
from membank_server.observability.metrics import start_metrics_listener
from membank_server.services.runtime import Runtime

__all__ = ["create_app"]


class _Metrics(PrometheusController):
    """Metrics hold no tenant's data, yet their movement tells who is active: admin only
    unless ``security.metrics_public`` (or use the listener at ``server.metrics_address``)."""

    path = "/metrics"
    include_in_schema = False
    guards = [admin_only]


class _PublicMetrics(_Metrics):
    guards = []
    opt = {"public": True}


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


@get(
    "/ready",
    tags=["ops"],
    summary="Readiness: 503 until storage and embedder are ready",
    operation_id="ready",
    opt={"public": True},
    responses={
        503: ResponseSpec(
            data_container=ErrorBody, description="not ready yet", generate_examples=False
        )
    },
)
async def ready(state: State) -> Response[Any]:
    runtime: Runtime = state.runtime
    checks: dict[str, Any] = {"storage": runtime.store_ready, "embedder": runtime.embedder_ready}
    writes = runtime.writes()
    if runtime.ready:
        # Still ready with writes refused: reads and searches go on; the body says so.
        status = "degraded" if writes else "ready"
        return Response(
            {"status": status, **checks, "writes": writes or "accepted"}, media_type=MediaType.JSON
        )
    reason = runtime.store_error or runtime.embedder_error or "warming up"
    return error_response(503, "not_ready", reason, checks, {"Retry-After": "1"})


@get(
    "/v1/collection",
    tags=["ops"],
    summary="Collection configuration and counts",
    operation_id="get_collection",
    guards=[admin_only],
    responses=responses(503),
)
async def collection(state: State) -> dict[str, Any]:
    runtime: Runtime = state.runtime
    info = await runtime.store.info()
    return {
        "backend": info.backend,
        "name": info.name,
        "dimension": info.dimension,
        "distance": info.distance,
        "points": info.points,
        "indexed_vectors": info.indexed_vectors,
        "segments": info.segments,
        "live_memories": await runtime.memories.count(),
        "embedder": runtime.embedder.model,
        "extra": dict(info.extra),
    }


def create_app(runtime: Runtime, settings: Settings) -> Litestar:
    """Build the app around a runtime that its lifespan starts and closes."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        address = settings.server.metrics_address
        close_listener = start_metrics_listener(address) if address else None
        await runtime.start()
        if runtime.admin_key is not None:
            # Shown once, on the terminal, never through logging; only its hash is kept.
            sys.stderr.write(
                "\n  membank created the first admin API key; it is shown only this once:\n"
                f"\n      {runtime.admin_key}\n\n"
                "  Send it as 'Authorization: Bearer <key>'; make other keys with "
                "'membank keys create'.\n\n"
            )
            sys.stderr.flush()
            runtime.admin_key = None
        try:
            yield
        finally:
            try:
                await runtime.aclose()
            except BaseException as exc:
                shutdown_report.failed = f"{type(exc).__name__}: {exc}"
                raise
            finally:
                if close_listener is not None:
                    close_listener()

    v1 = Router(
        path="/",
        route_handlers=[
            MemoryController,
            SearchController,
            CacheController,
            AdminController,
            collection,
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
    prometheus = PrometheusConfig(
        app_name="membank", prefix="membank", group_path=True, exclude=["/metrics"]
    )
    sec = settings.security
    security = SecurityMiddleware(sec, runtime.access, runtime.throttle, runtime.audit)
    metrics = _PublicMetrics if sec.metrics_public else _Metrics
    cors = CORSConfig(allow_origins=sec.cors_origins) if sec.cors_origins else None
    edge = EdgeMiddleware()
    app = Litestar(
        route_handlers=[v1, batch, health, ready, metrics],
        lifespan=[lifespan],
        state=State({"runtime": runtime, "json_max_depth": settings.limits.json_max_depth}),
        exception_handlers=exception_handlers,
        middleware=[edge, prometheus.middleware, security],
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
    state_server_rules(app.openapi_schema, runtime.embedder.dimension, runtime.memories.limits)
    return app
