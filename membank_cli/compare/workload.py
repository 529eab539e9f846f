"""One workload for both sides: the same memories, questions and concurrent writes."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any

from loadtests.texts import diary_entry, persona

__all__ = ["ComparePlan", "Query", "Workload", "make_workload"]


@dataclass(frozen=True)
class ComparePlan:
    """What ``membank bench compare`` runs; figures are for one run on this machine."""

    memories: int = 2000
    per_user: int = 20
    queries: int = 500
    threads: int = 8
    concurrent_adds: int = 400
    seed: int = 7
    #: membank's result and query-embedding cache; off, both sides embed and search each time.
    membank_cache: bool = False


@dataclass(frozen=True)
class Query:
    user_id: str
    question: str
    #: Index into ``Workload.memories`` of the one memory that answers it.
    target: int


@dataclass(frozen=True)
class Workload:
    #: (user_id, text), ingested in this order.
    memories: list[tuple[str, str]]
    queries: list[Query]
    #: (user_id, text) written by ``threads`` writers at once, after the searches.
    concurrent: list[tuple[str, str]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Workload:
        return cls(
            memories=[(u, t) for u, t in data["memories"]],
            queries=[Query(**q) for q in data["queries"]],
            concurrent=[(u, t) for u, t in data["concurrent"]],
        )


def make_workload(plan: ComparePlan) -> Workload:
    """Persona facts over ``memories / per_user`` users; each question has one right memory."""
    rng = random.Random(plan.seed)
    memories: list[tuple[str, str]] = []
    candidates: list[Query] = []
    user = 0
    while len(memories) < plan.memories:
        user_id = f"cmp-{plan.seed}-{user:05d}"
        for fact in persona(user_id, min(plan.per_user, plan.memories - len(memories))):
            candidates.append(Query(user_id, fact.question, len(memories)))
            memories.append((user_id, fact.text))
        user += 1
    queries = rng.sample(candidates, min(plan.queries, len(candidates)))
    users = sorted({u for u, _ in memories})
    concurrent = [(rng.choice(users), diary_entry(rng)) for _ in range(plan.concurrent_adds)]
    return Workload(memories, queries, concurrent)
