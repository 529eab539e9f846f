"""Operations endpoints: readiness, the collection's description, an index build."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import msgspec
from litestar import MediaType, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec

from membank_server.api.errors import error_response, responses
from membank_server.api.schemas import ErrorBody
from membank_server.api.tenancy import admin_only
from membank_server.services.collection import (
    CollectionReport,
    CollectionService,
    IndexBuildStatus,
)
from membank_server.services.readiness import Readiness

__all__ = ["CollectionRead", "IndexBuildRead", "collection", "optimize", "ready"]


class IndexBuildRead(msgspec.Struct, kw_only=True):
    running: bool
    started_at: datetime | None
    finished_at: datetime | None
    changed: bool | None
    error: str | None

    @classmethod
    def of(cls, s: IndexBuildStatus) -> IndexBuildRead:
        return cls(**dataclasses.asdict(s))


class CollectionRead(msgspec.Struct, kw_only=True):
    backend: str
    name: str
    dimension: int
    distance: str
    points: int
    indexed_vectors: int
    segments: int
    live_memories: int
    embedder: str
    index_build: IndexBuildRead
    extra: dict[str, Any]

    @classmethod
    def of(cls, r: CollectionReport) -> CollectionRead:
        info = r.info
        return cls(
            backend=info.backend,
            name=info.name,
            dimension=info.dimension,
            distance=info.distance,
            points=info.points,
            indexed_vectors=info.indexed_vectors,
            segments=info.segments,
            live_memories=r.live_memories,
            embedder=r.embedder,
            index_build=IndexBuildRead.of(r.index_build),
            extra=dict(info.extra),
        )


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
async def ready(readiness: NamedDependency[Readiness]) -> Response[Any]:
    r = readiness.report()
    checks: dict[str, Any] = {"storage": r.storage, "embedder": r.embedder}
    if r.ready:
        # Still ready with writes refused: reads and searches go on; the body says so.
        status = "degraded" if r.writes else "ready"
        return Response(
            {"status": status, **checks, "writes": r.writes or "accepted"},
            media_type=MediaType.JSON,
        )
    return error_response(503, "not_ready", r.reason or "not ready", checks, {"Retry-After": "1"})


@get(
    "/v1/collection",
    tags=["ops"],
    summary="Collection configuration and counts",
    operation_id="get_collection",
    guards=[admin_only],
    responses=responses(503),
)
async def collection(collection: NamedDependency[CollectionService]) -> CollectionRead:
    return CollectionRead.of(await collection.describe())


@post(
    "/v1/collection/optimize",
    tags=["ops"],
    summary="Build the store's pending vector indexes in the background",
    operation_id="optimize_collection",
    description=(
        "202 with the build's status. The embedded store builds its HNSW index in a child "
        "process on a copy of the shard and swaps it in with a short pause (README, "
        '"Index builds"); a build already running is not started again. Progress and '
        "outcome: `index_build` in GET /v1/collection."
    ),
    guards=[admin_only],
    status_code=202,
    responses=responses(503),
    opt={"audit": "collection.optimize"},
)
async def optimize(collection: NamedDependency[CollectionService]) -> IndexBuildRead:
    return IndexBuildRead.of(collection.optimize_later())
