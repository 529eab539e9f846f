"""HTTP handlers of jobs (status, dead letters, retry, purge) and of fact extraction.

A job is scoped like the memories it holds: a key that may not read every user of
a job gets 404 for it, as for a memory of another user.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from litestar import Controller, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody, PathParameter, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from membank_server.api.errors import responses
from membank_server.api.job_schemas import (
    DeadList,
    DeadRead,
    ExtractBody,
    ExtractRead,
    JobList,
    JobRead,
    Retried,
)
from membank_server.api.tenancy import Tenancy
from membank_server.domain.errors import Forbidden, NotEnabled, NotFound
from membank_server.domain.jobs import Job
from membank_server.domain.model import USER_ID_PATTERN
from membank_server.services.extraction import ExtractionService
from membank_server.services.jobs import JobService

__all__ = ["ExtractController", "JobController", "Jobs", "Mode", "accepted", "queue_of"]

#: None when the server was built without a job queue (some tests): 404 not_enabled.
Jobs = NamedDependency[JobService | None]
Extraction = NamedDependency[ExtractionService | None]
Tenant = NamedDependency[Tenancy]
#: ``sync`` answers when the work is done; ``async`` answers 202 with a job at once.
Mode = Annotated[
    Literal["sync", "async"],
    QueryParameter(description="sync: answer when done; async: 202 with a job id at once"),
]
UserFilter = Annotated[
    str | None, QueryParameter(min_length=1, max_length=128, pattern=USER_ID_PATTERN.pattern)
]
User = Annotated[str, QueryParameter(min_length=1, max_length=128, pattern=USER_ID_PATTERN.pattern)]
ACCEPTED = ResponseSpec(
    data_container=JobRead,
    description="accepted: the job's id and status (GET /v1/jobs/{id} follows it)",
    generate_examples=False,
)


def queue_of(jobs: JobService | None) -> JobService:
    if jobs is None:
        raise NotEnabled("this server runs no job queue")
    return jobs


def accepted(job: Job) -> Response[JobRead]:
    """202 with the job, and where to follow it."""
    return Response(
        JobRead.of(job), status_code=HTTP_202_ACCEPTED, headers={"Location": f"/v1/jobs/{job.id}"}
    )


async def _visible(jobs: JobService | None, tenancy: Tenancy, job_id: UUID) -> Job:
    job = await queue_of(jobs).get(job_id)
    try:
        for user_id in job.user_ids:
            await tenancy.read(user_id)
    except NotFound:
        raise NotFound("no job with this id") from None
    return job


class JobController(Controller):
    path = "/v1/jobs"
    tags = ["jobs"]

    @get(
        "/{job_id:uuid}",
        summary="A job: status, counts and its items' results",
        operation_id="get_job",
        description="Items come a page at a time: follow next_item_offset.",
        responses=responses(404, 422, 503),
    )
    async def read(
        self,
        job_id: FromPath[UUID],
        jobs: Jobs,
        tenancy: Tenant,
        item_offset: Annotated[int, QueryParameter(ge=0, le=2**31 - 1)] = 0,
        item_limit: Annotated[int, QueryParameter(ge=1, le=10_000)] = 1000,
    ) -> JobRead:
        job = await _visible(jobs, tenancy, job_id)
        items = await queue_of(jobs).items(job_id, item_offset, item_limit)
        return JobRead.of(job, items, item_limit)

    @get(
        summary="A user's jobs, newest first",
        operation_id="list_jobs",
        responses=responses(404, 422, 503),
    )
    async def list_jobs(
        self,
        user_id: User,
        jobs: Jobs,
        tenancy: Tenant,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
        before: Annotated[
            datetime | None, QueryParameter(description="created_at of the last job seen")
        ] = None,
    ) -> JobList:
        await tenancy.read(user_id)
        found = await queue_of(jobs).list_jobs(user_id, limit, before)
        return JobList([JobRead.of(j) for j in found])

    @get(
        "/dead",
        summary="The dead-letter list: items that failed for good, with their errors",
        operation_id="list_dead_items",
        description="Of one user (user_id), or, for an admin key, of everyone.",
        responses=responses(404, 422, 503),
    )
    async def dead(
        self,
        jobs: Jobs,
        tenancy: Tenant,
        user_id: UserFilter = None,
        limit: Annotated[int, QueryParameter(ge=1, le=10_000)] = 100,
    ) -> DeadList:
        if user_id is None:
            if not tenancy.principal.is_admin:
                raise Forbidden("the whole dead-letter list needs an admin key; give user_id")
        else:
            await tenancy.read(user_id)
        return DeadList([DeadRead.of(d) for d in await queue_of(jobs).dead(user_id, limit)])

    @post(
        "/{job_id:uuid}/retry",
        status_code=HTTP_200_OK,
        summary="Put a job's dead items back in the queue",
        operation_id="retry_job",
        responses=responses(404, 422, 503),
        opt={"audit": "job.retry"},
    )
    async def retry(self, job_id: FromPath[UUID], jobs: Jobs, tenancy: Tenant) -> Retried:
        await _visible(jobs, tenancy, job_id)
        return Retried(await queue_of(jobs).retry(job_id))

    @post(
        "/{job_id:uuid}/items/{index:int}/retry",
        status_code=HTTP_200_OK,
        summary="Put one dead item of a job back in the queue",
        operation_id="retry_job_item",
        responses=responses(404, 422, 503),
        opt={"audit": "job.retry"},
    )
    async def retry_item(
        self,
        job_id: FromPath[UUID],
        index: Annotated[int, PathParameter(ge=0, le=2**31 - 1)],
        jobs: Jobs,
        tenancy: Tenant,
    ) -> Retried:
        await _visible(jobs, tenancy, job_id)
        return Retried(await queue_of(jobs).retry(job_id, index))

    @post(
        "/reindex",
        status_code=HTTP_202_ACCEPTED,
        summary="Embed a user's memories again with the current embedder, as a job",
        operation_id="reindex_user",
        responses=responses(404, 422, 429, 503),
        opt={"audit": "job.reindex"},
    )
    async def reindex(self, user_id: User, jobs: Jobs, tenancy: Tenant) -> Response[JobRead]:
        await tenancy.read(user_id)
        return accepted(await queue_of(jobs).reindex_later(user_id))

    @delete(
        "/{job_id:uuid}",
        status_code=HTTP_204_NO_CONTENT,
        summary="Forget a finished job, its results and its dead items",
        operation_id="purge_job",
        responses=responses(404, 409, 422, 503),
        opt={"audit": "job.purge"},
    )
    async def purge(self, job_id: FromPath[UUID], jobs: Jobs, tenancy: Tenant) -> None:
        await _visible(jobs, tenancy, job_id)
        await queue_of(jobs).purge(job_id)


class ExtractController(Controller):
    path = "/v1/memories/extract"
    tags = ["memories"]

    @post(
        status_code=HTTP_200_OK,
        summary="Turn a conversation into memories (fact extraction by a language model)",
        operation_id="extract_memories",
        description=(
            "The model extracts facts, compares each with the user's similar memories and "
            "decides ADD, UPDATE, DELETE or NONE; each decision and its reason go to the "
            "memory's history. 400 when the server has no language model configured; 502 "
            "when the model's answer is unusable (nothing is written then). With "
            "mode=async: 202 and a job."
        ),
        responses=responses(
            400, 403, 413, 415, 422, 502, 503, others={HTTP_202_ACCEPTED: ACCEPTED}
        ),
    )
    async def extract(
        self,
        data: JSONBody[ExtractBody],
        extraction: Extraction,
        jobs: Jobs,
        tenancy: Tenant,
        mode: Mode = "sync",
    ) -> Response[ExtractRead | JobRead]:
        await tenancy.create({data.user_id})
        if extraction is None:
            raise NotEnabled("this server runs no fact extraction")
        conversation = data.to_domain()
        if mode == "async":
            extraction.check(conversation)
            job = await queue_of(jobs).extract_later(conversation)
            return accepted(job)  # type: ignore[return-value]
        return Response(ExtractRead.of(await extraction.extract(conversation)))
