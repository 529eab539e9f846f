"""The comparison's workload, phases and ratios, over an in-memory side (no I/O)."""

from __future__ import annotations

import itertools
import threading

from membank_cli.compare.measure import SideReport, measure
from membank_cli.compare.run import CompareReport
from membank_cli.compare.workload import ComparePlan, Workload, make_workload


class FlakySide:
    """Keeps memories in a dict; the 5th concurrent add fails, the 7th is acknowledged and lost."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[str, str]] = {}
        self.ids = itertools.count()
        self.lock = threading.Lock()
        self.concurrent = False
        self.calls = 0

    def add(self, user_id: str, text: str) -> str:
        with self.lock:
            memory_id = f"m{next(self.ids)}"
            self.calls += 1
            if self.concurrent and self.calls % 5 == 0:
                raise RuntimeError("database is locked")
            if not (self.concurrent and self.calls % 7 == 0):
                self.rows[memory_id] = (user_id, text)
            return memory_id

    def search(self, user_id: str, query: str, limit: int) -> list[str]:
        # Exact word overlap: enough to rank the fact a question was written for.
        words = set(query.lower().strip("?").split())
        own = [(k, t) for k, (u, t) in self.rows.items() if u == user_id]
        own.sort(key=lambda kv: -len(words & set(kv[1].lower().split())))
        return [k for k, _ in own[:limit]]

    def exists(self, user_id: str, memory_id: str) -> bool:
        if memory_id == "m91":
            raise IndexError("index 91 is out of bounds")  # as qdrant-client local mode did
        return self.rows.get(memory_id, ("", ""))[0] == user_id


def test_workload_questions_point_at_their_own_users_memory() -> None:
    plan = ComparePlan(memories=95, per_user=20, queries=30, concurrent_adds=12)
    w = make_workload(plan)
    assert len(w.memories) == 95 and len(w.queries) == 30 and len(w.concurrent) == 12
    assert len({u for u, _ in w.memories}) == 5
    for q in w.queries:
        assert w.memories[q.target][0] == q.user_id
    assert make_workload(plan) == w
    assert Workload.from_dict(w.to_dict()) == w


def test_phases_count_errors_and_lost_writes_without_stopping() -> None:
    w = make_workload(ComparePlan(memories=60, per_user=20, queries=20, concurrent_adds=35))
    side = FlakySide()
    original_search = side.search

    def search(user_id: str, query: str, limit: int) -> list[str]:
        side.concurrent = True  # the concurrent phases come after the first search phase
        return original_search(user_id, query, limit)

    side.search = search  # type: ignore[method-assign]
    report = measure(side, "flaky", w, threads=4)
    assert report.ingest_per_s > 0 and report.search_p99_ms >= report.search_p50_ms
    assert 0 <= report.ingest_p50_ms <= report.ingest_p99_ms
    assert report.concurrent_adds_per_s > 0
    assert report.concurrent_adds == 35
    assert report.concurrent_ingest_errors == 7  # calls 65, 70, ... 95 of the 95
    assert report.lost_writes == 5  # 63, 77, 84, 91 acknowledged, never kept; 92's look-up fails
    assert "database is locked" in report.notes["first_ingest_error"]
    assert report.notes["lookup_errors"] == 1
    assert 0 <= report.hit_at_1 <= 1


def test_ratios_favour_membank_above_one() -> None:
    m = SideReport("membank", 200, 2, 4, 0.9, concurrent_search_qps=900, concurrent_adds_per_s=30)
    o = SideReport("mem0", 100, 20, 80, 0.9, concurrent_search_qps=90, concurrent_adds_per_s=10)
    ratios = CompareReport(ComparePlan(), m, o).ratios
    assert ratios == {
        "ingest_rate": 2.0,
        "concurrent_ingest_rate": 3.0,
        "search_p50_lower_by": 10.0,
        "search_p99_lower_by": 20.0,
        "concurrent_search_qps": 10.0,
    }
    assert CompareReport(ComparePlan(), m, SideReport("mem0")).ratios["ingest_rate"] is None
