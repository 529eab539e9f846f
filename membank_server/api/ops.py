"""Operations endpoints: readiness and the collection's description."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import MediaType, Response, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec

from membank_server.api.errors import error_response, responses
from membank_server.api.schemas import ErrorBody
from membank_server.api.tenancy import admin_only
from membank_server.services.collection import CollectionReport, CollectionService
from membank_server.services.readiness import Readiness

__all__ = ["CollectionRead", "collection", "ready"]


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
