"""The phases both sides go through, in the same order, with the same inputs.

1. ingest: every memory, one add at a time (adds per second, p50/p99 of one add);
2. search: every question, one at a time (p50/p99 latency, hit@1: the memory the
   question was written for ranks first);
3. concurrent search: the questions again from ``threads`` threads (queries/s);
4. concurrent ingest: new memories from ``threads`` threads (adds per second, errors), then every
   acknowledged one looked up again by id (lost writes: not found, or the look-up failed).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from membank_cli.compare.workload import Workload

__all__ = ["Side", "SideReport", "measure"]


class Side(Protocol):
    """One memory system, driven synchronously (each call may run on any thread)."""

    def add(self, user_id: str, text: str) -> str:
        """Store one memory; its id once acknowledged. Raises on any failure."""
        ...

    def search(self, user_id: str, query: str, limit: int) -> list[str]:
        """Ids of the best memories of ``user_id`` for ``query``, best first."""
        ...

    def exists(self, user_id: str, memory_id: str) -> bool: ...


@dataclass
class SideReport:
    name: str
    ingest_per_s: float = 0.0
    search_p50_ms: float = 0.0
    search_p99_ms: float = 0.0
    hit_at_1: float = 0.0
    search_errors: int = 0
    concurrent_search_qps: float = 0.0
    concurrent_search_errors: int = 0
    concurrent_adds: int = 0
    concurrent_ingest_errors: int = 0
    lost_writes: int = 0
    ingest_p50_ms: float = 0.0
    ingest_p99_ms: float = 0.0
    concurrent_adds_per_s: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)


def _percentile(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        return 0.0
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)


def _in_threads(threads: int, items: Sequence[Any], work: Callable[[Any], Any]) -> list[Any]:
    """``work`` over ``items`` from ``threads`` threads; each result or the exception raised."""

    def guarded(item: Any) -> Any:
        try:
            return work(item)
        except Exception as exc:  # noqa: BLE001 -- every failure is counted, none hidden
            return exc

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(guarded, items))


def measure(side: Side, name: str, workload: Workload, threads: int) -> SideReport:
    """Run the four phases on ``side``; a failed call counts as an error, never stops it."""
    report = SideReport(name)
    started = time.perf_counter()
    ids: list[str] = []
    add_latencies: list[float] = []
    for user, text in workload.memories:
        t0 = time.perf_counter()
        ids.append(side.add(user, text))
        add_latencies.append(time.perf_counter() - t0)
    report.ingest_per_s = round(len(ids) / (time.perf_counter() - started), 1)
    report.ingest_p50_ms = _percentile(add_latencies, 0.5)
    report.ingest_p99_ms = _percentile(add_latencies, 0.99)

    latencies: list[float] = []
    hits = 0
    for q in workload.queries:
        t0 = time.perf_counter()
        try:
            found = side.search(q.user_id, q.question, 5)
        except Exception:  # noqa: BLE001 -- counted as an error of this side
            report.search_errors += 1
            continue
        latencies.append(time.perf_counter() - t0)
        hits += bool(found) and found[0] == ids[q.target]
    report.search_p50_ms = _percentile(latencies, 0.5)
    report.search_p99_ms = _percentile(latencies, 0.99)
    report.hit_at_1 = round(hits / len(workload.queries), 4) if workload.queries else 0.0

    started = time.perf_counter()
    results = _in_threads(
        threads, workload.queries, lambda q: side.search(q.user_id, q.question, 5)
    )
    report.concurrent_search_qps = round(len(results) / (time.perf_counter() - started), 1)
    report.concurrent_search_errors = sum(isinstance(r, Exception) for r in results)

    started = time.perf_counter()
    written = _in_threads(threads, workload.concurrent, lambda m: (m[0], side.add(*m)))
    report.concurrent_adds = len(written)
    report.concurrent_adds_per_s = round(len(written) / (time.perf_counter() - started), 1)
    failures = [r for r in written if isinstance(r, Exception)]
    report.concurrent_ingest_errors = len(failures)
    acknowledged = [r for r in written if not isinstance(r, Exception)]
    # A look-up that fails finds nothing: the write is lost to the reader either way.
    looked_up = _in_threads(1, acknowledged, lambda a: side.exists(*a))
    report.lost_writes = sum(r is not True for r in looked_up)
    lookup_errors = [r for r in looked_up if isinstance(r, Exception)]
    for label, errors in (("ingest", failures), ("lookup", lookup_errors)):
        if errors:
            report.notes[f"{label}_errors"] = len(errors)
            report.notes[f"first_{label}_error"] = f"{type(errors[0]).__name__}: {errors[0]}"[:300]
    return report
