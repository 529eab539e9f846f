"""JobService: accept work for later (202 and a job id), and tell how a job is going.

A job is checked whole before it is accepted, as a synchronous request would be
(every item valid, or a 422 naming the index; at most ``job_max_items`` items, or
413), then stored in the queue in one durable write. Items without an ``id`` get one
now: the memory id they will have, which makes processing them idempotent.

Back-pressure: the queue refuses a job that would take it, or one of its users,
past a limit (``QueueFull``, 429); ``Retry-After`` is how long the workers of this
process took to finish that many items lately (1 to 300 seconds).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from uuid import UUID

import msgspec

from membank_server.domain.errors import Conflict, InvalidInput, NotFound, QueueFull, TooLarge
from membank_server.domain.jobs import (
    DeadItem,
    ItemResult,
    Job,
    JobItem,
    JobKind,
    JobQueue,
    QueueLimits,
)
from membank_server.services._job_payloads import Conversation, UserWork, encode_memory
from membank_server.services._writes import MemoryIds
from membank_server.services.idempotency import IdempotencyIds
from membank_server.services.inputs import NewMemory, request_digest
from membank_server.services.memories import MemoryService
from membank_server.services.workers import Wakeup

__all__ = ["JobLimits", "JobService"]

_NO_JOB = "no job with this id"


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class JobLimits:
    job_max_items: int = 10_000
    queue_max_items: int = 200_000
    user_max_items: int = 50_000
    keep_seconds: float = 7 * 86_400.0

    def queue_limits(self) -> QueueLimits:
        return QueueLimits(self.queue_max_items, self.user_max_items)


class JobService:
    """Jobs of one tenant's requests, queued durably (module docs).

    Args:
        queue: Where jobs wait.
        memories: Checks items as a synchronous write would.
        limits: Job size and back-pressure limits.
        wakeup: Rung when a job is queued, so idle workers of this process start now.
        idempotency: Derives the ids an ``Idempotency-Key`` stands for.
        drain_rate: Items per second the workers finish lately (for Retry-After).
        clock: The current time.
    """

    def __init__(
        self,
        queue: JobQueue,
        memories: MemoryService,
        limits: JobLimits | None = None,
        *,
        wakeup: Wakeup | None = None,
        idempotency: IdempotencyIds | None = None,
        drain_rate: Callable[[], float] = lambda: 0.0,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.queue = queue
        self.memories = memories
        self.limits = limits or JobLimits()
        self._wakeup = wakeup or Wakeup()
        self._idempotency = idempotency or IdempotencyIds()
        self._drain_rate = drain_rate
        self._clock = clock
        self._ids = MemoryIds()

    # -- accepting work ----------------------------------------------------------

    async def remember_later(
        self, items: Sequence[NewMemory], idempotency_key: str | None = None
    ) -> Job:
        """Queue memories to embed and store; all checked now, as a batch would be.

        With ``idempotency_key`` (one item): the job's id derives from the key and the
        request, so a replay answers the job the first request made; the item is
        written as the synchronous request would be (a reuse with another body dies
        with a 409 ``conflict``).

        Raises:
            InvalidInput: no item, or an item a write would refuse (``details`` names it).
            TooLarge: more items than ``job_max_items``.
            QueueFull: the queue or a user's share of it is full.
        """
        if not items:
            raise InvalidInput("a job needs at least one memory", {"field": "memories"})
        self._check_size(len(items))
        self.memories.validate(items)
        if idempotency_key is not None and len(items) == 1:
            (item,) = items
            name = f"job\n{idempotency_key}\n{request_digest(item)}"
            job_id = self._idempotency.id_for(item.user_id, name)
            if (job := await self.queue.job(job_id)) is not None:
                return job
            payload = encode_memory(item, idempotency_key)
            return await self._submit(JobKind.EMBED, [JobItem(item.user_id, payload)], job_id)
        named = [item if item.id is not None else replace(item, id=self._ids()) for item in items]
        return await self._submit(
            JobKind.EMBED, [JobItem(i.user_id, encode_memory(i)) for i in named]
        )

    async def extract_later(self, conversation: Conversation) -> Job:
        """Queue a conversation for fact extraction (checked by the caller first)."""
        payload = msgspec.msgpack.encode(conversation)
        return await self._submit(JobKind.EXTRACT, [JobItem(conversation.user_id, payload)])

    async def erase_later(self, user_id: str) -> Job:
        """Queue the erasure of every memory of a user."""
        return await self._user_job(JobKind.DELETE_USER, user_id)

    async def reindex_later(self, user_id: str) -> Job:
        """Queue embedding a user's memories again with the current embedder."""
        return await self._user_job(JobKind.REINDEX, user_id)

    async def _user_job(self, kind: JobKind, user_id: str) -> Job:
        payload = msgspec.msgpack.encode(UserWork(user_id))
        return await self._submit(kind, [JobItem(user_id, payload)])

    def _check_size(self, n: int) -> None:
        if n > self.limits.job_max_items:
            raise TooLarge(
                f"a job holds at most {self.limits.job_max_items} items, got {n}: "
                "split it into several jobs",
                {"field": "memories", "limit": self.limits.job_max_items},
            )

    async def _submit(self, kind: JobKind, items: list[JobItem], job_id: UUID | None = None) -> Job:
        now = self._clock()
        users = tuple(sorted({item.user_id for item in items}))
        job = Job(job_id or self._ids(), kind, users, now, now, len(items))
        try:
            await self.queue.submit(job, items, self.limits.queue_limits())
        except QueueFull as exc:
            excess = exc.details.get("waiting", 0) + len(items) - exc.details.get("limit", 0)
            rate = self._drain_rate()
            wait = math.ceil(max(excess, 1) / rate) if rate > 0 else 5
            exc.details["retry_after"] = min(300, max(1, wait))
            raise
        self._wakeup.ring(kind)
        return job

    # -- reading and mending -----------------------------------------------------

    async def get(self, job_id: UUID) -> Job:
        """A job and its counts.

        Raises:
            NotFound: no such job (or it was purged).
        """
        job = await self.queue.job(job_id)
        if job is None:
            raise NotFound(_NO_JOB)
        return job

    async def items(self, job_id: UUID, offset: int = 0, limit: int = 1000) -> list[ItemResult]:
        if offset < 0 or limit < 1:
            raise InvalidInput("offset must be >= 0 and limit >= 1", {"field": "limit"})
        return await self.queue.items(job_id, offset, min(limit, 10_000))

    async def list_jobs(
        self, user_id: str, limit: int = 100, before: datetime | None = None
    ) -> list[Job]:
        """Jobs with items of ``user_id``, newest first."""
        return await self.queue.jobs(user_id, max(1, min(limit, 1000)), before)

    async def dead(self, user_id: str | None, limit: int = 100) -> list[DeadItem]:
        """The dead-letter list, newest first (one user's, or everyone's)."""
        return await self.queue.dead(user_id, max(1, min(limit, 10_000)))

    async def retry(self, job_id: UUID, index: int | None = None) -> int:
        """Put a job's dead items (or the one at ``index``) back in the queue; how many."""
        job = await self.get(job_id)
        count = await self.queue.retry(job_id, index)
        if count:
            self._wakeup.ring(job.kind)
        return count

    async def purge(self, job_id: UUID) -> None:
        """Forget a finished job, its results and its dead items.

        Raises:
            NotFound: no such job.
            Conflict: it still has items waiting.
        """
        await self.get(job_id)
        if not await self.queue.purge(job_id):
            raise Conflict("this job still has items waiting: purge it once it has finished")

    async def purge_finished(self) -> int:
        """Forget jobs finished more than ``keep_seconds`` ago (upkeep); how many."""
        before = self._clock() - timedelta(seconds=self.limits.keep_seconds)
        return await self.queue.purge(finished_before=before)
