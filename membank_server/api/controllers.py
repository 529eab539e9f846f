"""HTTP handlers: parse, call one service method, shape the answer."""

from __future__ import annotations

import time
from typing import Annotated, Any, cast
from urllib.parse import quote
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, HeaderParameter, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT
from msgspec import Struct

from membank_server.api.body import BodyProblem, check_json_body, check_types
from membank_server.api.errors import error_response, responses
from membank_server.api.job_schemas import JobRead
from membank_server.api.jobs import ACCEPTED, Jobs, Mode, accepted, queue_of
from membank_server.api.schemas import (
    BatchCreate,
    BatchRead,
    Deleted,
    HistoryList,
    HistoryRead,
    MemoryCreate,
    MemoryPage,
    MemoryRead,
    MemoryUpdate,
    SearchBody,
    SearchResponse,
    SearchResult,
)
from membank_server.api.tenancy import Tenancy
from membank_server.domain.model import USER_ID_PATTERN, Memory
from membank_server.domain.routing import answered_by, note_backend
from membank_server.services.memories import MemoryService
from membank_server.services.recall_cache import CachedHits

__all__ = [
    "BatchController",
    "MemoryController",
    "SearchController",
    "before_memory_request",
    "mark_backend",
]

UserQuery = Annotated[
    str,
    QueryParameter(
        name="user_id",
        min_length=1,
        max_length=128,
        pattern=USER_ID_PATTERN.pattern,
        description="the end user whose memories these are",
    ),
]
Memories = NamedDependency[MemoryService]
Tenant = NamedDependency[Tenancy]
OptionalId = Annotated[
    str | None, QueryParameter(min_length=1, max_length=128, pattern=USER_ID_PATTERN.pattern)
]


#: What If-Match takes: a version as an entity tag, weak or not (``"3"``, ``W/"3"``, ``3``).
_IF_MATCH = r'^((W/)?"?[0-9]{1,18}"?)?$(?!\n)'


def _if_match(value: str) -> int | None:
    if not value:
        return None
    tag = value.strip().removeprefix("W/").strip('"')
    if not tag.isdigit():
        raise HTTPException(
            status_code=400, detail='If-Match must be a memory version, e.g. If-Match: "3"'
        )
    return int(tag)


def _etag(version: int) -> dict[str, str]:
    return {"ETag": f'"{version}"'}


def _location(m: Memory) -> str:
    return f"/v1/memories/{m.id}?user_id={quote(m.user_id, safe='')}"


class MemoryController(Controller):
    path = "/v1/memories"
    tags = ["memories"]

    @post(
        status_code=HTTP_201_CREATED,
        summary="Store a memory",
        operation_id="create_memory",
        description=(
            "201 with the new memory. An exact duplicate of a live memory of the same user "
            "answers 200 with the existing one. With `Idempotency-Key`, a replay of the same "
            "request answers as the first did and stores nothing; the key with another body "
            "is a 409. With `id`, the call is an idempotent upsert of that memory. With "
            "mode=async: 202 and a job (with `Idempotency-Key`, a replay answers the same job)."
        ),
        responses=responses(
            409,
            413,
            415,
            422,
            503,
            others={
                200: ResponseSpec(
                    data_container=MemoryRead,
                    description="an exact duplicate of a live memory: the existing one",
                    generate_examples=False,
                ),
                202: ACCEPTED,
            },
        ),
    )
    async def create(
        self,
        data: JSONBody[MemoryCreate],
        service: Memories,
        jobs: Jobs,
        tenancy: Tenant,
        idempotency_key: Annotated[
            str | None, HeaderParameter(name="Idempotency-Key", min_length=1, max_length=255)
        ] = None,
        mode: Mode = "sync",
    ) -> Response[MemoryRead | JobRead]:
        await tenancy.create({data.user_id})
        if mode == "async":
            job = await queue_of(jobs).remember_later([data.to_domain()], idempotency_key)
            return accepted(job)  # type: ignore[return-value]
        memory, created = await service.remember(data.to_domain(), idempotency_key)
        headers = _etag(memory.version)
        if created:
            headers["Location"] = _location(memory)
        return Response(
            MemoryRead.of(memory),
            status_code=HTTP_201_CREATED if created else HTTP_200_OK,
            headers=headers,
        )

    @get(
        "/{memory_id:uuid}",
        summary="Read a memory",
        operation_id="get_memory",
        responses=responses(404, 422, 503),
    )
    async def read(
        self, memory_id: FromPath[UUID], user_id: UserQuery, service: Memories, tenancy: Tenant
    ) -> Response[MemoryRead]:
        await tenancy.read(user_id)
        memory = await service.get(user_id, memory_id)
        return Response(MemoryRead.of(memory), headers=_etag(memory.version))

    @get(
        summary="List a user's memories",
        operation_id="list_memories",
        description="Ascending id (creation) order; follow next_cursor for the next page.",
        responses=responses(422, 503),
    )
    async def list_memories(
        self,
        user_id: UserQuery,
        service: Memories,
        tenancy: Tenant,
        agent_id: OptionalId = None,
        session_id: OptionalId = None,
        limit: Annotated[int, QueryParameter(ge=1)] = 100,
        cursor: Annotated[
            str | None, QueryParameter(format="uuid", description="next_cursor of a page")
        ] = None,
    ) -> MemoryPage:
        await tenancy.read(user_id)
        page = await service.list_page(
            user_id, limit=limit, cursor=cursor, agent_id=agent_id, session_id=session_id
        )
        return MemoryPage([MemoryRead.of(m) for m in page.items], page.next_cursor)

    @patch(
        "/{memory_id:uuid}",
        summary="Change a memory",
        operation_id="update_memory",
        responses=responses(400, 404, 412, 413, 415, 422, 503),
    )
    async def update(
        self,
        memory_id: FromPath[UUID],
        user_id: UserQuery,
        data: JSONBody[MemoryUpdate],
        service: Memories,
        tenancy: Tenant,
        if_match: Annotated[
            str, HeaderParameter(name="If-Match", pattern=_IF_MATCH, max_length=32, required=False)
        ] = "",
    ) -> Response[MemoryRead]:
        await tenancy.read(user_id)
        memory = await service.update(user_id, memory_id, data.to_domain(), _if_match(if_match))
        return Response(MemoryRead.of(memory), headers=_etag(memory.version))

    @get(
        "/{memory_id:uuid}/history",
        summary="Every version of a memory, oldest first",
        operation_id="get_memory_history",
        responses=responses(404, 422, 503),
    )
    async def history(
        self, memory_id: FromPath[UUID], user_id: UserQuery, service: Memories, tenancy: Tenant
    ) -> HistoryList:
        await tenancy.read(user_id)
        events = await service.history(user_id, memory_id)
        return HistoryList([HistoryRead.of(e) for e in events])

    @delete(
        "/{memory_id:uuid}",
        status_code=HTTP_204_NO_CONTENT,
        summary="Delete a memory",
        operation_id="delete_memory",
        responses=responses(404, 422, 503),
        opt={"audit": "memory.delete"},
    )
    async def remove(
        self, memory_id: FromPath[UUID], user_id: UserQuery, service: Memories, tenancy: Tenant
    ) -> None:
        await tenancy.read(user_id)
        await service.forget(user_id, memory_id)

    @delete(
        status_code=HTTP_200_OK,
        summary="Erase all of a user's memories and their history",
        operation_id="erase_user_memories",
        description="With mode=async: 202 and a job.",
        responses=responses(404, 422, 503, others={202: ACCEPTED}),
        opt={"audit": "memory.erase_user"},
    )
    async def erase_user(
        self,
        user_id: UserQuery,
        service: Memories,
        jobs: Jobs,
        tenancy: Tenant,
        mode: Mode = "sync",
    ) -> Response[Deleted | JobRead]:
        await tenancy.read(user_id)
        if mode == "async":
            return accepted(await queue_of(jobs).erase_later(user_id))  # type: ignore[return-value]
        return Response(Deleted(await service.forget_user(user_id)))


class BatchController(Controller):
    """Batch writes, under their own (larger) body size limit."""

    path = "/v1/memories/batch"
    tags = ["memories"]

    @post(
        status_code=HTTP_201_CREATED,
        summary="Store many memories",
        operation_id="create_memories",
        description=(
            "All or nothing on validation: one bad item is a 422 naming its index. With "
            "mode=async: checked the same way, then 202 and a job; a job holds up to "
            "jobs.job_max_items items (413 above), and a full queue answers 429."
        ),
        responses=responses(400, 409, 413, 415, 422, 503, others={202: ACCEPTED}),
        opt={"batch": True},
    )
    async def create_batch(
        self,
        data: JSONBody[BatchCreate],
        service: Memories,
        jobs: Jobs,
        tenancy: Tenant,
        mode: Mode = "sync",
    ) -> Response[BatchRead | JobRead]:
        await tenancy.create({m.user_id for m in data.memories})
        items = [m.to_domain() for m in data.memories]
        if mode == "async":
            return accepted(await queue_of(jobs).remember_later(items))  # type: ignore[return-value]
        results = await service.remember_many(items)
        read = BatchRead(
            items=[MemoryRead.of(m) for m, _ in results],
            created=sum(created for _, created in results),
        )
        return Response(read, status_code=HTTP_201_CREATED)


class SearchController(Controller):
    path = "/v1/search"
    tags = ["search"]

    @post(
        status_code=HTTP_200_OK,
        summary="Semantic search of one user's memories",
        operation_id="search_memories",
        description="Give `query` (text, embedded by the server) or `vector`, not both.",
        responses=responses(400, 413, 415, 422, 503),
    )
    async def search(
        self, data: JSONBody[SearchBody], service: Memories, tenancy: Tenant
    ) -> Response[SearchResponse]:
        await tenancy.read(data.user_id)
        started = time.perf_counter()
        hits, cache = await service.recall(data.to_domain())
        took_ms = round((time.perf_counter() - started) * 1000, 3)
        headers = {"X-Membank-Cache": cache}
        if isinstance(hits, CachedHits):
            # A cache hit: the same bytes in the cache are the same results out.
            encoded = _EncodedSearch(_ENCODED.of(hits), took_ms, cache)
            return Response(cast(SearchResponse, encoded), headers=headers)
        results = [SearchResult(MemoryRead.of(h.memory), h.score) for h in hits]
        return Response(SearchResponse(results, took_ms, cache), headers=headers)


class _EncodedSearch(Struct):
    """``SearchResponse`` with its results already encoded (same fields, same order)."""

    results: msgspec.Raw
    took_ms: float
    cache: str


class _EncodedResults:
    """The encoded ``results`` of recent cache hits, keyed by the cached bytes; at most
    ``entries`` of blobs under ``max_blob`` bytes (a process-local copy of L1 entries)."""

    def __init__(self, entries: int = 512, max_blob: int = 256 * 1024) -> None:
        self.entries, self.max_blob = entries, max_blob
        self._done: dict[bytes, msgspec.Raw] = {}

    def of(self, hits: CachedHits) -> msgspec.Raw:
        found = self._done.get(hits.blob)
        if found is None:
            results = [SearchResult(MemoryRead.of(h.memory), h.score) for h in hits]
            found = msgspec.Raw(msgspec.json.encode(results))
            if len(hits.blob) <= self.max_blob:
                if len(self._done) >= self.entries:
                    self._done.pop(next(iter(self._done)))
                self._done[hits.blob] = found
        return found


_ENCODED = _EncodedResults()


async def before_memory_request(request: Request[Any, Any, Any]) -> Response[Any] | None:
    """Refuse a body that is not JSON (415) or not a document any handler should see
    (``api.body``), before anything decodes it; and note the configured store as the
    default answer to "which backend served this"."""
    note_backend(request.app.state.backend)
    has_body = request.headers.get("content-length", "0") != "0" or (
        "transfer-encoding" in request.headers
    )
    if request.method in ("POST", "PATCH", "PUT") and has_body:
        kind = request.headers.get("content-type", "")
        if kind.split(";", 1)[0].strip().lower() != "application/json":
            raise HTTPException(
                status_code=415, detail=f"send JSON (Content-Type: application/json), not {kind!r}"
            )
        body = await request.body()
        data = request.route_handler.parsed_fn_signature.parameters.get("data")
        try:
            document = check_json_body(body, request.app.state.json_max_depth)
            if data is not None:
                check_types(document, data.annotation)
        except BodyProblem as problem:
            return error_response(problem.status, problem.code, problem.message, problem.details)
    return None


async def mark_backend(response: Response[Any]) -> Response[Any]:
    """``X-Membank-Backend``: the store that answered (a hybrid store routes per request)."""
    backend = answered_by()
    if backend is not None:
        response.headers["X-Membank-Backend"] = backend
    return response
