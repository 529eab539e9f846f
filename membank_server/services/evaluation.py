"""Retrieval evaluation: load a labelled suite into a store, ask its questions in each
mode, score the rankings.

A suite is memories (one per dialog turn, each of one user, with the time it was
said) and questions (of one user, with the keys of their evidence memories and a
category). Per question and mode, the first ``depth`` hits are scored:

* ``recall@k``: at least one evidence memory is among the first k (k = 1, 5, 10);
* ``MRR``: 1 / the rank of the first evidence memory (0 beyond ``depth``);
* ``all@10``: every evidence memory is among the first 10.

Latency is each search's wall time through the service (query embedding included
unless memoised), reported as p50 and p95 per mode.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from statistics import median, quantiles
from uuid import UUID

from membank_server.domain.ports import Embedder
from membank_server.domain.retrieval import RetrievalChoice
from membank_server.services.inputs import NewMemory, RecallQuery
from membank_server.services.memories import MemoryService

__all__ = [
    "EvalMemory",
    "EvalQuestion",
    "EvalSuite",
    "MemoEmbedder",
    "ModeReport",
    "Score",
    "evaluate",
    "load_suite_into",
]

_ALL = "all"


@dataclass(frozen=True, slots=True)
class EvalMemory:
    key: str
    user_id: str
    content: str
    occurred_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class EvalQuestion:
    key: str
    user_id: str
    text: str
    category: str
    evidence: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EvalSuite:
    name: str
    memories: tuple[EvalMemory, ...]
    questions: tuple[EvalQuestion, ...]

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(q.category for q in self.questions))


@dataclass
class Score:
    """Sums over questions; ``row()`` gives the means."""

    questions: int = 0
    at1: int = 0
    at5: int = 0
    at10: int = 0
    rr: float = 0.0
    all10: int = 0
    #: Questions the mode returned nothing for.
    empty: int = 0

    def add(self, ranks: Sequence[int], evidence: int, found: int) -> None:
        first = min(ranks, default=None)
        self.questions += 1
        self.at1 += first is not None and first <= 1
        self.at5 += first is not None and first <= 5
        self.at10 += first is not None and first <= 10
        self.rr += 1.0 / first if first is not None else 0.0
        self.all10 += sum(1 for r in ranks if r <= 10) == evidence
        self.empty += found == 0

    def row(self) -> dict[str, float]:
        n = max(self.questions, 1)
        return {
            "questions": self.questions,
            "recall@1": self.at1 / n,
            "recall@5": self.at5 / n,
            "recall@10": self.at10 / n,
            "mrr": self.rr / n,
            "all@10": self.all10 / n,
            "empty": self.empty,
        }


@dataclass
class ModeReport:
    """One run (a mode and its settings) over one suite: scores per category and overall,
    latencies in milliseconds."""

    name: str
    scores: dict[str, Score] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)

    def latency(self) -> dict[str, float]:
        lat = self.latencies_ms
        if len(lat) < 2:
            return {"p50_ms": lat[0] if lat else 0.0, "p95_ms": lat[0] if lat else 0.0}
        return {"p50_ms": median(lat), "p95_ms": quantiles(lat, n=20)[18]}


class MemoEmbedder:
    """An :class:`Embedder` that embeds each distinct text once (one evaluation asks
    the same question in several modes, and a test session reuses the turns)."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self._seen: dict[str, list[float]] = {}

    @property
    def model(self) -> str:
        return self.inner.model

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    async def start(self) -> None:
        await self.inner.start()

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        missing = list(dict.fromkeys(t for t in texts if t not in self._seen))
        if missing:
            self._seen.update(zip(missing, await self.inner.embed(missing), strict=True))
        return [self._seen[t] for t in texts]

    async def aclose(self) -> None:
        await self.inner.aclose()


async def load_suite_into(
    service: MemoryService, suite: EvalSuite, batch: int = 500
) -> dict[UUID, str]:
    """Write the suite's memories (their real times kept); memory id -> key."""
    keys: dict[UUID, str] = {}
    items = list(suite.memories)
    for start in range(0, len(items), batch):
        part = items[start : start + batch]
        written = await service.remember_many(
            [NewMemory(m.user_id, m.content, occurred_at=m.occurred_at) for m in part]
        )
        keys.update((memory.id, m.key) for m, (memory, _) in zip(part, written, strict=True))
    return keys


async def evaluate(
    service: MemoryService,
    suite: EvalSuite,
    keys: Mapping[UUID, str],
    runs: Mapping[str, RetrievalChoice],
    *,
    depth: int = 10,
    progress: Callable[[int], None] | None = None,
) -> list[ModeReport]:
    """Ask every question of ``suite`` once per run; the reports in ``runs``' order."""
    reports = []
    for name, choice in runs.items():
        report = ModeReport(name)
        for q in suite.questions:
            started = time.perf_counter()
            hits = await service.search(
                RecallQuery(q.user_id, q.text, limit=depth, retrieval=choice)
            )
            report.latencies_ms.append((time.perf_counter() - started) * 1000)
            found = [keys.get(h.memory.id) for h in hits]
            ranks = [i for i, key in enumerate(found, start=1) if key in q.evidence]
            for category in (_ALL, q.category):
                report.scores.setdefault(category, Score()).add(ranks, len(q.evidence), len(hits))
            if progress is not None:
                progress(1)
        reports.append(report)
    return reports
