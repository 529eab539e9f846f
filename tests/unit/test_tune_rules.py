"""The tuner's arithmetic: windows from totals, the design's thresholds, bounded proposals."""

from __future__ import annotations

from typing import Any

from membank_cli.tune.figures import Window, better, window_of
from membank_cli.tune.rules import bottlenecks, propose
from membank_server.domain.observe import LATENCY_BUCKETS_MS

N = len(LATENCY_BUCKETS_MS) + 1


def _tunable(name: str, value: float, lo: float, hi: float, step: float, live: bool = True) -> Any:
    return {"name": name, "value": value, "minimum": lo, "maximum": hi, "step": step,
            "live": live, "integer": True, "help": ""}  # fmt: skip


TUNABLES = [
    _tunable("search.hnsw_ef", 128, 16, 1024, 32),
    _tunable("cache.l1_max_entries", 2, 100, 1_000_000, 1000),
    _tunable("cache.l1_max_bytes", 64 * 2**20, 2**20, 4 * 2**30, 16 * 2**20),
    _tunable("server.workers", 1, 1, 4, 1, live=False),
]


def _window(**kw: Any) -> Window:
    values: dict[str, Any] = {
        "seconds": 10.0, "requests": 1000, "server_errors": 0, "p95_ms": 20.0, "p99_ms": 40.0,
        "rps": 100.0, "cpu_share": 0.3, "rss_bytes": 2**30, "memory_share": 0.2,
        "hit_ratio": {"l1": 0.95},
    }  # fmt: skip
    return Window(**{**values, **kw})


def test_a_healthy_server_has_no_bottleneck_and_no_proposal() -> None:
    assert bottlenecks(_window(), _thresholds()) == []
    assert propose(_window(), TUNABLES) == []


def _thresholds() -> Any:
    from membank_cli.tune.rules import Thresholds

    return Thresholds()


def test_a_tiny_l1_cache_gets_a_bigger_one_within_its_bounds() -> None:
    w = _window(hit_ratio={"l1": 0.01})
    assert bottlenecks(w, _thresholds()) == ["cache l1 hit ratio 0.01 (< 0.80)"]
    first = propose(w, TUNABLES)[0]
    # Doubled, or one step, or up to the minimum: whichever is largest.
    assert (first.tunable, first.old, first.new, first.live) == (
        "cache.l1_max_entries",
        2,
        1002,
        True,
    )
    at_top = [_tunable("cache.l1_max_entries", 1_000_000, 100, 1_000_000, 1000)]
    assert propose(w, at_top) == []


def test_cpu_slow_p99_and_memory_follow_the_design_thresholds() -> None:
    hot = _window(cpu_share=0.9, p99_ms=250.0)
    assert len(bottlenecks(hot, _thresholds())) == 2
    got = {p.tunable: p for p in propose(hot, TUNABLES)}
    assert got["search.hnsw_ef"].new == 64  # halved: at most half, at least one step down
    # More workers takes a restart: proposed, never live.
    assert got["server.workers"].new == 2 and not got["server.workers"].live
    full = propose(_window(memory_share=0.9), TUNABLES)
    assert [(p.tunable, p.new) for p in full] == [("cache.l1_max_bytes", 32 * 2**20)]
    assert propose(_window(p99_ms=199.0, cpu_share=0.79, memory_share=0.84), TUNABLES) == []


def test_a_queue_more_than_80_percent_full_is_a_bottleneck() -> None:
    assert bottlenecks(_window(), _thresholds(), {"ingest": 0.85}) == [
        "queue ingest 85% full (> 80%)"
    ]


def test_the_job_queue_fill_comes_from_the_totals_and_asks_for_more_job_workers() -> None:
    before = {"requests": 0, "server_errors": 0, "latency": [0] * N, "cpu_seconds": 0.0,
              "rss_bytes": 100, "memory_limit_bytes": 1000, "cpus": 2, "cache": {}}  # fmt: skip
    after = {**before, "queue_depth": 900, "queue_capacity": 1000, "job_workers": 2}
    w = window_of(before, after, 1.0)
    assert w.queues == {"jobs": 0.9}
    assert bottlenecks(w, _thresholds()) == ["queue jobs 90% full (> 80%)"]
    pools = [_tunable("jobs.embed_store.max", 8, 1, 64, 1), *TUNABLES]
    first = propose(w, pools)[0]
    assert (first.tunable, first.old, first.new) == ("jobs.embed_store.max", 8, 16)
    # A server without a pipeline (or an older one) reports no queue.
    assert window_of(before, before, 1.0).queues == {}
    assert window_of(before, {**after, "queue_depth": 100}, 1.0).queues == {"jobs": 0.1}


def test_windows_from_two_totals_and_which_objective_is_better() -> None:
    before = {"requests": 100, "server_errors": 0, "latency": [0] * N, "cpu_seconds": 1.0,
              "rss_bytes": 100, "memory_limit_bytes": 1000, "cpus": 2,
              "cache": {"l1": {"hit": 10, "miss": 10}}}  # fmt: skip
    latency = [0] * N
    latency[4] = 198  # (7.5, 10] ms
    latency[15] = 2  # (150, 200] ms
    after = {**before, "requests": 300, "latency": latency, "cpu_seconds": 3.0,
             "cache": {"l1": {"hit": 190, "miss": 30}}}  # fmt: skip
    w = window_of(before, after, 2.0)
    assert (w.requests, w.rps, w.cpu_share, w.memory_share) == (200, 100.0, 0.5, 0.1)
    assert w.hit_ratio == {"l1": 0.9}
    assert w.p99_ms == 10.0  # rank 198 is the last of the fast ones
    assert better("p99", 100.0, 90.0, 0.05) and not better("p99", 100.0, 97.0, 0.05)
    assert better("throughput", 100.0, 110.0, 0.05) and not better("throughput", 100.0, 90.0, 0.05)
    assert not better("p99", None, 1.0, 0.05)
