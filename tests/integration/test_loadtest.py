"""``membank loadtest``: a short smoke run of every scenario against a real server.

One server serves every scenario over ``--host`` with the admin key (so the run
makes one key per tenant, and revokes them after); ``cache-hot`` starts its own
server instead, the default. Each run is a few seconds with a few users over a
few tenants: enough to show every endpoint the scenario names was called, with
no failure, and that the CSV, HTML and JSON reports say the same thing.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from loadtests.scenarios import load_scenario, scenario_names
from tests.support.server import ADMIN_KEY, ServerProcess

LOOSE = "availability = 0\nerror_rate = 1\np95_ms = 1e9\np99_ms = 1e9\nmin_rps = 0\n"
IMPOSSIBLE = "p95_ms = 0\np99_ms = 0\nmin_rps = 1e12\n"


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("loadtest") / "data").start()
    yield proc
    proc.stop()


def _loadtest(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMBANK_")}
    return subprocess.run(
        [sys.executable, "-m", "membank_cli", "loadtest", "--out", str(out), *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )


def _html_stats(path: Path) -> dict[str, tuple[int, int]]:
    marker = "window.templateArgs = "
    html = path.read_text()
    start = html.index(marker) + len(marker)
    args: dict[str, Any] = json.loads(html[start : html.index("\n", start)].rstrip(";"))
    return {r["name"]: (r["num_requests"], r["num_failures"]) for r in args["requests_statistics"]}


def _csv_stats(path: Path) -> dict[str, tuple[int, int]]:
    with path.open(newline="") as fh:
        return {
            r["Name"]: (int(r["Request Count"]), int(r["Failure Count"]))
            for r in csv.DictReader(fh)
        }


def _check_reports(out: Path, name: str) -> dict[str, Any]:
    summary = json.loads((out / "summary.json").read_text())
    csv_stats = _csv_stats(out / "locust_stats.csv")
    from_json = {e["name"]: (e["requests"], e["failures"]) for e in summary["endpoints"]} | {
        "Aggregated": (summary["total"]["requests"], summary["total"]["failures"])
    }
    assert csv_stats == from_json == _html_stats(out / "report.html")
    for endpoint in load_scenario(name).endpoints:
        assert from_json.get(endpoint, (0, 0))[0] > 0, f"{name}: no request on {endpoint}"
    assert summary["total"]["failures"] == 0, summary["failures"]
    assert (out / "locust_stats_history.csv").stat().st_size > 0
    return summary


@pytest.mark.parametrize("name", [n for n in scenario_names() if n != "cache-hot"])
def test_every_scenario_runs_against_a_given_host(
    name: str, target: ServerProcess, tmp_path: Path
) -> None:
    slo = tmp_path / "loose.toml"
    slo.write_text(LOOSE)
    scale = 4 / load_scenario(name).tenants
    extra = ["--processes", "2"] if name == "mixed" else []
    # Shaped runs spend most of their time on a fifth of the users: give them more.
    users = 20 if load_scenario(name).shape else 10
    result = _loadtest(
        tmp_path / name,
        *("--scenario", name, "--host", target.url, "--admin-key", ADMIN_KEY),
        *("--users", str(users), "--spawn-rate", str(users), "--duration", "3s"),
        *("--rps", str(users * 10)),
        *("--scale", str(scale), "--slo", str(slo), *extra),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = _check_reports(tmp_path / name, name)
    assert summary["seeded"]["tenants"] == summary["seeded"]["keys_made"] == 4
    assert summary["verdict"]["passed"]
    assert "met" in result.stdout and "BROKEN" not in result.stdout
    # Cleaned up: the run's keys are revoked and its tenants erased.
    with httpx.Client(base_url=target.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as c:
        keys = c.get("/v1/admin/keys").raise_for_status().json()
    ours = [k for k in keys if k["name"].startswith("loadtest ")]
    assert ours and all(k["revoked_at"] for k in ours)


def test_a_started_server_and_an_impossible_slo_fail_the_run(tmp_path: Path) -> None:
    slo = tmp_path / "impossible.toml"
    slo.write_text(IMPOSSIBLE)
    result = _loadtest(
        tmp_path / "hot",
        *("--scenario", "cache-hot", "--users", "10", "--spawn-rate", "10"),
        *("--duration", "3s", "--rps", "100", "--scale", "0.05", "--slo", str(slo)),
    )
    assert result.returncode == 1, result.stdout + result.stderr
    summary = _check_reports(tmp_path / "hot", "cache-hot")
    assert summary["started_server"] is True
    assert summary["verdict"]["broken"] == ["p95", "p99", "throughput"]
    assert summary["server_rss_mib"]["start"] > 0 and summary["server_rss_mib"]["end"] > 0
    assert "BROKEN" in result.stdout
