"""``membank bench search|cache|fairness|index``: tiny benches end to end, and what is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from typer.testing import CliRunner

from membank_cli.app import app


def _bench(verb: str, *args: str) -> Any:
    """Run ``membank bench VERB --json ARGS`` in a clean environment; its JSON."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMBANK_")}
    result = subprocess.run(
        [sys.executable, "-m", "membank_cli", "bench", verb, "--json", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def test_search_measures_every_phase_on_a_server_it_starts() -> None:
    report = _bench(
        "search",
        *("--n", "1500", "--users", "20", "--embed-n", "50"),
        *("--searches", "60", "--text-searches", "10", "--concurrency", "2"),
        *("--mode", "dense", "--mode", "hybrid", "--skew", "0.2"),
    )
    assert (report["n"], report["users"], report["skew"]) == (1500, 20, 0.2)
    [run] = report["runs"]
    assert run["backend"] == "edge" and run["server_rss_mib"] > 0
    per_memory = run["rss_bytes_per_memory"] * 1550 / 2**20
    assert per_memory == pytest.approx(run["server_rss_mib"], abs=0.1)
    assert run["disk_bytes_per_memory"] == round(run["disk_bytes"] / 1550, 1) > 0
    phases = {p["phase"]: p for p in run["phases"]}
    assert set(phases) == {
        "ingest, vectors",
        "ingest, embed",
        "search, vector (c=2)",
        "search, vector, user-big (300) (c=2)",
        "search, text (c=2)",
        "search, text, dense (c=2)",
        "search, text, hybrid (c=2)",
    }
    assert [phases[p]["count"] for p in phases] == [1500, 50, 60, 60, 10, 10, 10]
    for name in phases.keys() - {"ingest, vectors", "ingest, embed"}:
        assert 0 < phases[name]["p50_ms"] <= phases[name]["p99_ms"]
    for name in ("search, vector (c=2)", "search, vector, user-big (300) (c=2)"):
        assert phases[name]["p99_ms"] <= phases[name]["max_ms"]


def test_index_probes_searches_through_a_build_on_a_server_it_starts() -> None:
    report = _bench("index", *("--n", "1500", "--idle", "0.5", "--write-every", "0.02"))
    assert (report["memories"], report["big_tenant"]) == (1500, 300)
    assert report["build_error"] is None and report["writes_missing_after"] == 0
    assert report["writes_during_build"] > 0
    phases = [p["phase"] for p in report["probes"]]
    assert report["writes"]["count"] == report["writes_during_build"]
    assert phases == ["before the build", "during the build", "after the build"]
    assert all(0 < p["p50_ms"] <= p["max_ms"] for p in report["probes"] if p["count"] > 1)


def test_fairness_measures_both_tenants_on_a_server_it_starts() -> None:
    report = _bench(
        "fairness", *("--seconds", "2", "--quiet-memories", "40", "--batch-items", "40")
    )
    for phase in ("alone", "loaded"):
        figures = report[phase]
        assert figures["searches"] > 0
        assert 0 < figures["p50_ms"] <= figures["p99_ms"] <= figures["max_ms"]
    assert report["noisy_batches_done"] >= 1 and report["noisy_reads_done"] >= 1
    assert report["rss_before_batch_mib"] > 0 and report["rss_after_load_mib"] > 0


def test_hotpath_drives_membank_and_the_ceiling_alike(redis_url: str) -> None:
    """The Python generator (what runs without wrk): both servers measured, the ratio."""
    report = _bench("hotpath", "--redis-url", redis_url, "--seconds", "1", "--generator", "python")
    assert report["generator"] == "python (asyncio)" and report["connections"] == 32
    ceiling, membank = report["runs"]
    assert (ceiling["server"], membank["server"]) == ("ceiling", "membank")
    for run in (ceiling, membank):
        assert run["requests_per_second"] > 0 and 0 < run["p50_ms"] <= run["p99_ms"]
        assert run["server_cpu"] > 0 and run["generator_cpu"] > 0
    ratio = membank["requests_per_second"] / ceiling["requests_per_second"]
    assert report["of_ceiling"] == round(ratio, 3)


def test_memory_measures_a_layout_before_and_after_optimize() -> None:
    report = _bench(
        "memory",
        *("--n", "1500", "--users", "20", "--queries", "30", "--recall-users", "5"),
        *("--layout", "int8"),
    )
    assert (report["n"], report["users"], report["dimension"]) == (1500, 20, 384)
    [run] = report["layouts"]
    assert run["layout"] == "int8" and run["memories"] == 1500
    assert set(run["samples"]) == {"empty", "loaded", "optimized", "searched"}
    assert set(run["per_memory_bytes"]) == {"loaded", "optimized", "searched"}
    assert run["samples"]["loaded"]["disk_bytes"] > run["samples"]["empty"]["disk_bytes"]
    # 1,500 vectors are below Edge's indexing threshold: no int8 segment, exact scans, so
    # every search finds the brute-force top 10 (this checks how hits are scored).
    assert run["quantized_segments"] == 0
    assert run["recall_at_10"] == 1.0
    assert 0 < run["search_p50_ms"] <= run["search_p99_ms"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["search", "--url", "http://10.1.2.3:8080"], "on this machine"),
        (["search", "--backend", "mongo"], "unknown backend 'mongo'"),
        (["search", "--mode", "fuzzy"], "--mode takes dense, lexical or hybrid"),
        (["memory", "--layout", "int4"], "unknown layout 'int4'"),
        (["search", "--skew", "1"], "--skew is a share"),
        (["search", "--url", "http://127.0.0.1:9", "--data", "d"], "servers the bench starts"),
        (["cache"], "--redis-url"),
        (["cache", "--redis-url", "redis://10.1.2.3:6379/0"], "on this machine"),
        (["hotpath"], "--redis-url"),
        (["hotpath", "--redis-url", "redis://10.1.2.3:6379/0"], "on this machine"),
        (["hotpath", "--redis-url", "redis://127.0.0.1:1/0", "--generator", "ab"], "--generator"),
    ],
)
def test_refusals_are_one_line_before_anything_starts(args: list[str], needle: str) -> None:
    result = CliRunner().invoke(app, ["bench", *args], env={"MEMBANK_CACHE__REDIS_URL": ""})
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], result.stderr
