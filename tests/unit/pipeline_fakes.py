"""In-memory fakes of the pipeline's ports (the job queue, the language model)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any
from uuid import UUID

from membank_server.domain.errors import QueueFull
from membank_server.domain.jobs import (
    Claimed,
    DeadItem,
    ItemOutcome,
    ItemResult,
    ItemState,
    Job,
    JobItem,
    JobKind,
    QueueLimits,
)
from membank_server.domain.llm import ModelAnswer

__all__ = ["InMemoryJobQueue", "ScriptedModel"]


class InMemoryJobQueue:
    """The JobQueue port in dicts: items claimed in order, leases never run out."""

    backend = "memory"

    def __init__(self) -> None:
        self.jobs: dict[UUID, Job] = {}
        #: (job id, index) -> [kind, user, payload, state, attempts, outcome, enqueued]
        self.items: dict[tuple[UUID, int], list[Any]] = {}

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    def _waiting(self, user: str | None = None) -> int:
        return sum(
            1
            for v in self.items.values()
            if v[3] in (ItemState.PENDING, ItemState.LEASED) and user in (None, v[1])
        )

    async def submit(self, job: Job, items: Sequence[JobItem], limits: QueueLimits) -> None:
        if self._waiting() + len(items) > limits.max_items:
            raise QueueFull("full", {"waiting": self._waiting(), "limit": limits.max_items})
        self.jobs[job.id] = job
        for i, item in enumerate(items):
            self.items[(job.id, i)] = [
                job.kind,
                item.user_id,
                item.payload,
                ItemState.PENDING,
                0,
                None,
                job.created_at,
            ]

    async def claim(self, kind: JobKind, limit: int, lease_seconds: float) -> list[Claimed]:
        out = []
        for (job_id, index), v in self.items.items():
            if len(out) == limit:
                break
            if v[0] is kind and v[3] is ItemState.PENDING:
                v[3], v[4] = ItemState.LEASED, v[4] + 1
                out.append(Claimed(job_id, index, kind, v[1], v[2], v[4], v[6]))
        return out

    async def finish(self, outcomes: Sequence[ItemOutcome]) -> None:
        for o in outcomes:
            v = self.items[(o.job_id, o.index)]
            if v[3] is not ItemState.LEASED:
                continue
            v[3], v[5] = o.state, o
            if o.state is ItemState.PENDING and not o.counts:
                v[4] -= 1
            if o.state is not ItemState.PENDING:
                job = self.jobs[o.job_id]
                done = o.state is ItemState.DONE
                self.jobs[o.job_id] = replace(job, done=job.done + done, dead=job.dead + (not done))

    async def job(self, job_id: UUID) -> Job | None:
        return self.jobs.get(job_id)

    async def items(self, job_id: UUID, offset: int, limit: int) -> list[ItemResult]:
        return []

    async def jobs(self, user_id: str, limit: int, before: datetime | None = None) -> list[Job]:
        return [j for j in self.jobs.values() if user_id in j.user_ids][:limit]

    async def dead(self, user_id: str | None, limit: int) -> list[DeadItem]:
        return []

    async def retry(self, job_id: UUID, index: int | None = None) -> int:
        return 0

    async def purge(
        self, job_id: UUID | None = None, *, finished_before: datetime | None = None
    ) -> int:
        return 0

    async def depth(self) -> dict[JobKind, int]:
        counts = dict.fromkeys(JobKind, 0)
        for v in self.items.values():
            if v[3] in (ItemState.PENDING, ItemState.LEASED):
                counts[v[0]] += 1
        return counts


class ScriptedModel:
    """A LanguageModel answering from a list, in order; records what it was asked."""

    model = "scripted"

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.asked: list[tuple[str, Any]] = []

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    async def complete_json(
        self, system: str, user: str, schema_name: str, schema: Mapping[str, Any]
    ) -> ModelAnswer:
        self.asked.append((schema_name, json.loads(user)))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return ModelAnswer(answer, 10)
