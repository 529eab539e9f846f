"""SLIs from recorded request windows, against a hand computation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from membank_server.domain.observe import (
    LATENCY_BUCKETS_MS,
    RequestWindow,
    Totals,
    merge_windows,
    quantile_ms,
    sli_report,
    window_between,
)
from membank_server.domain.slo import Slo

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _latency(**by_bound: int) -> tuple[int, ...]:
    """Counts per bucket, by the bucket's upper bound in ms (``b7_5`` is 7.5 ms)."""
    counts = [0] * (len(LATENCY_BUCKETS_MS) + 1)
    for name, n in by_bound.items():
        counts[LATENCY_BUCKETS_MS.index(float(name[1:].replace("_", ".")))] += n
    return tuple(counts)


def test_slis_of_a_recorded_window_match_the_hand_computation() -> None:
    # 1,000 requests in 100 s over two windows: 900 took 5-7.5 ms, 50 took 7.5-10 ms,
    # 40 took 40-50 ms, 10 took 150-200 ms; 2 were answered 5xx and 8 answered 4xx.
    first = RequestWindow(T0, 60.0, 600, 1, 5, _latency(b7_5=540, b10=30, b50=24, b200=6))
    second = RequestWindow(
        T0 + timedelta(seconds=40), 40.0, 400, 1, 3, _latency(b7_5=360, b10=20, b50=16, b200=4)
    )
    merged = merge_windows([first, second])
    assert merged is not None and merged.requests == 1000
    report = sli_report(merged, Slo(), 100.0)
    # By hand: availability = 1 - 2/1000; error rate = (2 + 8)/1000; 10 requests a second.
    assert report.availability == pytest.approx(0.998)
    assert report.error_rate == pytest.approx(0.010)
    assert report.rps == pytest.approx(10.0)
    # p95: rank 950 is the last of the 50 in (7.5, 10]: 10 ms. p99: rank 990 is the last
    # of the 40 in (40, 50]: 50 ms. p50: rank 500 of 900 in (5, 7.5]: 5 + 2.5 * 500/900.
    assert report.p95_ms == pytest.approx(10.0)
    assert report.p99_ms == pytest.approx(50.0)
    assert quantile_ms(merged.latency, 0.5) == pytest.approx(5 + 2.5 * 500 / 900)
    # The budget: 99.9 % of 1,000 allows 1 failure; 2 spent it twice over.
    assert report.error_budget == pytest.approx(-1.0)
    assert report.met == {
        "availability": False,
        "error_rate": False,
        "p95_ms": True,
        "p99_ms": True,
        "rps": False,
    }


def test_no_request_means_no_verdict() -> None:
    report = sli_report(None, Slo(), 3600.0)
    assert report.requests == 0 and report.p99_ms is None and report.error_budget is None
    assert set(report.met.values()) == {None}


def test_targets_come_from_the_slo_given() -> None:
    window = RequestWindow(T0, 10.0, 100, 0, 0, _latency(b60=100))
    assert sli_report(window, Slo(), 10.0).met["p95_ms"] is False
    relaxed = Slo().merged({"p95_ms": 80, "min_rps": 5}, "test")
    report = sli_report(window, relaxed, 10.0)
    assert report.met["p95_ms"] is True and report.met["rps"] is True
    assert report.error_budget == 1.0


def test_windows_between_totals_count_a_restart_from_zero() -> None:
    def totals(at: int, requests: int, latency: tuple[int, ...], cpu: float) -> Totals:
        return Totals(T0 + timedelta(seconds=at), requests, 1, 2, latency, cpu, 0)

    a = totals(0, 500, _latency(b10=500), 10.0)
    b = totals(60, 800, _latency(b10=700, b20=100), 16.0)
    w = window_between(a, b)
    assert (w.requests, w.seconds, w.cpu_seconds) == (300, 60.0, 6.0)
    assert sum(w.latency) == 300
    restarted = totals(120, 40, _latency(b5=40), 1.0)
    w = window_between(b, restarted)
    assert w.requests == 40 and sum(w.latency) == 40 and w.cpu_seconds == 1.0


def test_slow_requests_beyond_the_last_bucket_read_at_the_last_bound() -> None:
    counts = [0] * (len(LATENCY_BUCKETS_MS) + 1)
    counts[-1] = 3
    assert quantile_ms(counts, 0.99) == LATENCY_BUCKETS_MS[-1]
    assert quantile_ms([0] * len(counts), 0.99) is None
