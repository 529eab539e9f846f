"""``membank bench ingest``: a tiny run end to end, every phase and ratio reported."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def test_ingest_bench_reports_raw_and_served_figures_and_the_pool() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMBANK_")}
    result = subprocess.run(
        [
            *(sys.executable, "-m", "membank_cli", "bench", "ingest", "--json"),
            *("--n", "120", "--single", "16", "--batch", "20", "--job", "40"),
            *("--queries", "16", "--clients", "4", "--users", "5"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    phases = {p["phase"]: p for p in report["phases"]}
    assert list(phases) == [
        "raw embedder, calls of 256",
        "raw embedder, queries in calls of 4",
        "sync single writes (c=4)",
        "sync batches of 20 (c=2)",
        "async pipeline, jobs of 40",
        "searches by text (c=4)",
    ]
    assert [p["count"] for p in phases.values()] == [120, 16, 16, 120, 120, 16]
    assert all(p["per_second"] > 0 for p in phases.values())
    assert set(report["ratio_to_raw"]) == set(list(phases)[2:])
    scaling = report["scaling"]
    assert scaling["max_workers"] >= 1 and scaling["end_workers"] >= 1
    assert scaling["max_depth"] <= 120
