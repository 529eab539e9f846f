"""Background jobs: what a job is, its items, and the durable queue port they wait in.

A job is one accepted request (an asynchronous write of one memory or a batch, an
extraction, a reindex, a user's erasure) cut into items, each processed on its own
and answered on its own: a memory id, or an error. Items wait in a
:class:`JobQueue` until a worker of their kind claims them; a claim is a lease, so
an item whose worker died (``kill -9``) is claimed again. Processing is idempotent
by item (an asynchronous write carries the memory id it will have), so an item
processed twice is stored once.

An item's life::

    pending --claim--> leased --done--> done
       ^                  |--retry (a transient failure, later)--> pending
       |                  '--dead (a permanent failure, or too many tries)--> dead
       '------------------------------ retry (operator) ------------------------'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol
from uuid import UUID

__all__ = [
    "Claimed",
    "DeadItem",
    "ItemOutcome",
    "ItemResult",
    "ItemState",
    "Job",
    "JobItem",
    "JobKind",
    "JobQueue",
    "JobStatus",
    "QueueLimits",
]


class JobKind(StrEnum):
    """What a job does; each kind has its own worker pool."""

    EMBED = "embed_store"
    EXTRACT = "extract"
    REINDEX = "reindex"
    DELETE_USER = "delete_user"


class ItemState(StrEnum):
    PENDING = "pending"
    LEASED = "leased"
    DONE = "done"
    DEAD = "dead"


class JobStatus(StrEnum):
    """``queued`` (nothing done yet), ``running``, ``done`` (every item stored),
    ``partial`` (finished, some items dead) or ``failed`` (every item dead)."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    PARTIAL = "partial"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Job:
    """A job and its counts (``done`` + ``dead`` + waiting = ``total``)."""

    id: UUID
    kind: JobKind
    user_ids: tuple[str, ...]
    created_at: datetime
    updated_at: datetime
    total: int
    done: int = 0
    dead: int = 0

    @property
    def status(self) -> JobStatus:
        if self.done + self.dead < self.total:
            return JobStatus.RUNNING if self.done + self.dead else JobStatus.QUEUED
        if self.dead == 0:
            return JobStatus.DONE
        return JobStatus.FAILED if self.done == 0 else JobStatus.PARTIAL


@dataclass(frozen=True, slots=True)
class JobItem:
    """One item to queue: its user and what the worker needs (opaque to the queue)."""

    user_id: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class Claimed:
    """An item a worker holds (leased) until it reports an :class:`ItemOutcome`."""

    job_id: UUID
    index: int
    kind: JobKind
    user_id: str
    payload: bytes
    #: Claims so far, this one included (a claim cut short by a crash counts).
    attempts: int
    enqueued_at: datetime


@dataclass(frozen=True, slots=True)
class ItemOutcome:
    """What became of a claimed item.

    ``state`` DONE: ``memory_id`` and/or ``detail`` answer it. DEAD: ``error`` says
    why, for good (until an operator retries it). PENDING: a transient failure,
    tried again after ``delay`` seconds; ``counts`` False gives the attempt back
    (the failure was not the item's: the store or the embedder was down).
    """

    job_id: UUID
    index: int
    state: ItemState
    memory_id: UUID | None = None
    detail: bytes | None = None
    error_code: str | None = None
    error: str | None = None
    delay: float = 0.0
    counts: bool = True


@dataclass(frozen=True, slots=True)
class ItemResult:
    """An item as the job API shows it."""

    index: int
    user_id: str
    state: ItemState
    attempts: int
    memory_id: UUID | None = None
    detail: bytes | None = None
    error_code: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class DeadItem:
    """A dead-letter entry: an item that failed for good, with its error."""

    job_id: UUID
    index: int
    kind: JobKind
    user_id: str
    attempts: int
    error_code: str
    error: str
    at: datetime


@dataclass(frozen=True, slots=True)
class QueueLimits:
    """Back-pressure: items waiting (pending or leased) in all, and per user."""

    max_items: int
    max_items_per_user: int


class JobQueue(Protocol):
    """Durable jobs and their items; every method raises ``Unavailable`` (or a
    subclass) when the backend cannot answer. A write returns once it is durable."""

    @property
    def backend(self) -> str: ...

    async def start(self) -> None:
        """Open; items leased by a process that is gone become claimable again."""
        ...

    async def aclose(self) -> None: ...

    async def submit(self, job: Job, items: Sequence[JobItem], limits: QueueLimits) -> None:
        """Store a job and all its items at once, or nothing.

        Raises:
            QueueFull: the queue, or one of the job's users, would hold more than
                ``limits`` allow.
        """
        ...

    async def claim(self, kind: JobKind, limit: int, lease_seconds: float) -> list[Claimed]:
        """Lease up to ``limit`` pending items of ``kind``, oldest first."""
        ...

    async def finish(self, outcomes: Sequence[ItemOutcome]) -> None:
        """Record what became of claimed items (and update their jobs' counts)."""
        ...

    async def job(self, job_id: UUID) -> Job | None: ...

    async def items(self, job_id: UUID, offset: int, limit: int) -> list[ItemResult]:
        """A job's items in index order, a page at a time."""
        ...

    async def jobs(self, user_id: str, limit: int, before: datetime | None = None) -> list[Job]:
        """Jobs holding items of ``user_id``, newest first (created before ``before``)."""
        ...

    async def dead(self, user_id: str | None, limit: int) -> list[DeadItem]:
        """Dead-letter entries, newest first: of one user, or of all."""
        ...

    async def retry(self, job_id: UUID, index: int | None = None) -> int:
        """Put a job's dead items (or one) back in the queue; how many."""
        ...

    async def purge(
        self, job_id: UUID | None = None, *, finished_before: datetime | None = None
    ) -> int:
        """Forget finished jobs, their items and dead-letter entries with them: one job
        (None when it is still running), or every job finished before a time (all
        finished ones without one); how many jobs went."""
        ...

    async def depth(self) -> dict[JobKind, int]:
        """Items waiting (pending or leased) per kind."""
        ...
