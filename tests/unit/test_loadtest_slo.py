"""SLO verdicts and Locust CSV parsing, on files recorded from a real run.

The fixtures come from ``membank loadtest`` against a server whose tenant keys
were limited to 5 requests/s (so 429s) and which was killed with SIGKILL part
way through (so refused connections): both kinds of failure are in them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from membank_cli.loadtest.report import EndpointStats, ReportError, Summary, read_summary
from membank_cli.loadtest.slo import Slo, load_slo, verdict
from membank_server.domain.errors import ConfigError

RECORDED = Path(__file__).parent / "fixtures" / "loadtest" / "locust"


def _summary(**total: float | int | None) -> Summary:
    values: dict[str, float | int | None] = {
        "requests": 100_000,
        "failures": 0,
        "unavailable": 0,
        "rps": 1500.0,
        "p50_ms": 3.0,
        "p95_ms": 20.0,
        "p99_ms": 60.0,
        "max_ms": 300.0,
    }
    values |= total
    entry = EndpointStats(name="Aggregated", **values)  # type: ignore[arg-type]
    return Summary((entry,), entry)


def test_recorded_csv_is_read_per_endpoint_with_the_aggregate() -> None:
    s = read_summary(RECORDED)
    assert [e.name for e in s.endpoints] == [
        "GET /v1/memories/{id}",
        "POST /v1/memories",
        "POST /v1/search",
    ]
    assert s.total.requests == 1038 == sum(e.requests for e in s.endpoints)
    assert s.total.failures == 951
    search = s.endpoint("POST /v1/search")
    assert search is not None
    assert (search.requests, search.failures, search.p95_ms, search.p99_ms) == (715, 657, 2, 31)
    assert search.max_ms == pytest.approx(40.04, abs=0.01)


def test_refused_connections_count_against_availability_and_429s_only_as_errors() -> None:
    s = read_summary(RECORDED)
    search = s.endpoint("POST /v1/search")
    assert search is not None
    # 236 refused + 1 closed connection: unavailable; the 420 429s were answered.
    assert search.unavailable == 237
    assert s.total.unavailable == 32 + 237 + 62
    assert s.total.availability == pytest.approx(1 - 331 / 1038)
    assert s.total.error_rate == pytest.approx(951 / 1038)
    assert ("GET /v1/memories/{id}", "CatchResponseError('HTTP 429')", 144) in s.failures


def test_recorded_run_breaks_availability_errors_and_throughput_not_latency() -> None:
    v = verdict(read_summary(RECORDED), Slo())
    assert not v.passed
    assert v.broken == ["availability", "error rate", "throughput"]


def test_a_healthy_run_meets_the_design_slos() -> None:
    v = verdict(_summary(), Slo())
    assert v.passed, v.checks
    assert v.broken == []


@pytest.mark.parametrize(
    ("total", "broken"),
    [
        ({"p95_ms": 50.0}, ["p95"]),  # the objective is strictly below 50 ms
        ({"p99_ms": 100.0}, ["p99"]),
        ({"rps": 1000.0}, ["throughput"]),
        ({"failures": 101}, ["error rate"]),  # 0.101 %
        ({"failures": 101, "unavailable": 101}, ["availability", "error rate"]),
        ({"p95_ms": None, "p99_ms": None}, ["p95", "p99"]),
    ],
)
def test_each_objective_breaks_on_its_own(total: dict[str, float], broken: list[str]) -> None:
    assert verdict(_summary(**total), Slo()).broken == broken


def test_a_run_without_requests_breaks_everything() -> None:
    empty = _summary(requests=0, rps=0.0, p50_ms=None, p95_ms=None, p99_ms=None, max_ms=None)
    assert len(verdict(empty, Slo(min_rps=0, p95_ms=1e9, p99_ms=1e9)).broken) == 5


def test_impossible_and_loose_slos_on_the_same_run(tmp_path: Path) -> None:
    impossible = tmp_path / "impossible.toml"
    impossible.write_text("p95_ms = 0\np99_ms = 0\nmin_rps = 1e12\n")
    loose = tmp_path / "loose.toml"
    loose.write_text(
        "[slo]\navailability = 0\nerror_rate = 1\np95_ms = 1e9\np99_ms = 1e9\nmin_rps = 0\n"
    )
    run = read_summary(RECORDED)
    assert verdict(run, load_slo(impossible)).broken == [
        "availability",
        "error rate",
        "p95",
        "p99",
        "throughput",
    ]
    assert verdict(run, load_slo(loose)).passed


def test_file_overrides_scenario_which_overrides_the_design(tmp_path: Path) -> None:
    path = tmp_path / "slo.toml"
    path.write_text("p99_ms = 250\n")
    slo = load_slo(path, {"p95_ms": 2000, "p99_ms": 4000})
    assert slo == Slo(p95_ms=2000, p99_ms=250)
    assert load_slo(None) == Slo(availability=0.999, error_rate=0.001, p95_ms=50, p99_ms=100)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("p95 = 3\n", "unknown SLO 'p95'"),
        ("p95_ms = -1\n", "must be a number >= 0"),
        ('p95_ms = "fast"\n', "must be a number >= 0"),
        ("availability = 99.9\n", "shares between 0 and 1"),
        ("p95_ms = \n", "cannot read SLOs"),
    ],
)
def test_bad_slo_files_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "slo.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_slo(path)


def test_missing_or_foreign_csv_is_a_report_error(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="cannot read"):
        read_summary(tmp_path / "nothing")
    (tmp_path / "x_stats.csv").write_text("a,b\n1,2\n")
    (tmp_path / "x_failures.csv").write_text("Method,Name,Error,Occurrences\n")
    with pytest.raises(ReportError, match="not Locust's stats file"):
        read_summary(tmp_path / "x")
