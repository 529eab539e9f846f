"""EncryptedJobQueue: item payloads sealed with the data keys before any queue keeps them.

A queued asynchronous write or conversation holds the same personal text as the
memory it becomes, so with field encryption on it is sealed as the memory's
fields are (AES-256-GCM with the ring's active key), and bound to its place:
the AAD is ``"job|<job id>|<index>|<user id>"``, so a payload copied to another
item or user does not open. What the queue shows without opening (users, counts,
memory ids, error codes) holds no content; an item's payload is dropped once it
is done.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from uuid import UUID

from membank_server.domain.errors import IntegrityError
from membank_server.domain.jobs import (
    Claimed,
    DeadItem,
    ItemOutcome,
    ItemResult,
    Job,
    JobItem,
    JobKind,
    JobQueue,
    QueueLimits,
)
from membank_server.security.crypto import KeyRing

__all__ = ["EncryptedJobQueue"]


def _aad(job_id: UUID, index: int, user_id: str) -> bytes:
    return f"job|{job_id}|{index}|{user_id}".encode()


class EncryptedJobQueue:
    """A :class:`~membank_server.domain.jobs.JobQueue` sealing payloads (module docs)."""

    def __init__(self, inner: JobQueue, ring: KeyRing) -> None:
        self.inner = inner
        self.ring = ring

    @property
    def backend(self) -> str:
        return self.inner.backend

    async def start(self) -> None:
        await self.inner.start()

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def submit(self, job: Job, items: Sequence[JobItem], limits: QueueLimits) -> None:
        sealed = [
            replace(item, payload=self.ring.seal_bytes(item.payload, _aad(job.id, i, item.user_id)))
            for i, item in enumerate(items)
        ]
        await self.inner.submit(job, sealed, limits)

    async def claim(self, kind: JobKind, limit: int, lease_seconds: float) -> list[Claimed]:
        return [
            replace(c, payload=self._open(c))
            for c in await self.inner.claim(kind, limit, lease_seconds)
        ]

    def _open(self, c: Claimed) -> bytes:
        """The plain payload; one queued before encryption was on as it is; one that does
        not open, empty (its item then dies as unreadable, the others go on)."""
        try:
            return self.ring.open_bytes(c.payload, _aad(c.job_id, c.index, c.user_id))
        except IntegrityError:
            return b"" if c.payload.startswith(b"mbenc") else c.payload

    async def finish(self, outcomes: Sequence[ItemOutcome]) -> None:
        await self.inner.finish(outcomes)

    async def job(self, job_id: UUID) -> Job | None:
        return await self.inner.job(job_id)

    async def items(self, job_id: UUID, offset: int, limit: int) -> list[ItemResult]:
        return await self.inner.items(job_id, offset, limit)

    async def jobs(self, user_id: str, limit: int, before: datetime | None = None) -> list[Job]:
        return await self.inner.jobs(user_id, limit, before)

    async def dead(self, user_id: str | None, limit: int) -> list[DeadItem]:
        return await self.inner.dead(user_id, limit)

    async def retry(self, job_id: UUID, index: int | None = None) -> int:
        return await self.inner.retry(job_id, index)

    async def purge(
        self, job_id: UUID | None = None, *, finished_before: datetime | None = None
    ) -> int:
        return await self.inner.purge(job_id, finished_before=finished_before)

    async def depth(self) -> dict[JobKind, int]:
        return await self.inner.depth()
