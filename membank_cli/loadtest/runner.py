"""Locust, headless, as a subprocess, with a live view of its progress.

The locustfile writes one JSON line a second to a progress file (users, current
rps and p95, failures); this module tails it into a Rich ``Live`` table while
Locust runs, and leaves Locust's own output in ``locust.log`` beside the reports.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

__all__ = ["LocustPlan", "locust_command", "run_locust"]


@dataclass(frozen=True)
class LocustPlan:
    """One headless Locust run: where, how hard, how long, and where its files go."""

    loadtests: Path
    host: str
    users: int
    spawn_rate: float
    seconds: float
    processes: int
    out: Path
    seed_file: Path
    shape: bool = False

    @property
    def csv_prefix(self) -> Path:
        return self.out / "locust"

    @property
    def html(self) -> Path:
        return self.out / "report.html"

    @property
    def log(self) -> Path:
        return self.out / "locust.log"

    @property
    def progress_file(self) -> Path:
        return self.seed_file.with_name("progress.jsonl")


def locust_command(plan: LocustPlan) -> list[str]:
    files = [plan.loadtests / "locustfile.py"]
    if plan.shape:
        files.append(plan.loadtests / "shape.py")
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        ",".join(str(f) for f in files),
        "--headless",
        "--host",
        plan.host,
        "--users",
        str(plan.users),
        "--spawn-rate",
        str(plan.spawn_rate),
        "--run-time",
        f"{max(1, round(plan.seconds))}s",
        "--stop-timeout",
        "5",
        "--csv",
        str(plan.csv_prefix),
        "--html",
        str(plan.html),
        "--only-summary",
        # The verdict is ours: Locust's exit code only says whether Locust itself worked.
        "--exit-code-on-error",
        "0",
    ]
    if plan.processes > 1:
        command += ["--processes", str(plan.processes)]
    return command


def _environment(plan: LocustPlan) -> dict[str, str]:
    # The locustfile imports ``loadtests``: its parent goes first on the path.
    path = os.pathsep.join(
        p for p in (str(plan.loadtests.parent), os.environ.get("PYTHONPATH")) if p
    )
    return {
        **os.environ,
        "PYTHONPATH": path,
        "MEMBANK_LT_SEED": str(plan.seed_file),
        "MEMBANK_LT_PROGRESS": str(plan.progress_file),
    }


def _progress(path: Path) -> tuple[float, dict[str, Any]] | None:
    """(seconds since the first line, the last line) of the progress file, once it has one."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return None
    parsed = []
    for line in (lines[:1] + lines[-2:]) if lines else []:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            continue  # the line being written
    if not parsed:
        return None
    return parsed[-1]["time"] - parsed[0]["time"], parsed[-1]


def _view(plan: LocustPlan, progress: tuple[float, dict[str, Any]] | None) -> Table:
    table = Table(title=f"locust → {plan.host}", show_header=True)
    for column in ("elapsed", "users", "req/s", "p95 ms (10 s)", "requests", "failures"):
        table.add_column(column, justify="right")
    if progress is None:
        table.add_row("starting", "", "", "", "", "")
    else:
        seconds, last = progress
        elapsed = f"{seconds:,.0f} / {plan.seconds:,.0f} s"
        table.add_row(
            elapsed,
            str(last["users"]),
            f"{last['rps']:,.1f}",
            str(last["p95_ms"] if last["p95_ms"] is not None else "-"),
            f"{last['requests']:,}",
            f"{last['failures']:,}",
        )
    return table


def run_locust(
    plan: LocustPlan,
    console: Console,
    tick: Callable[[], None] | None = None,
    every: float = 10.0,
) -> int:
    """Run Locust to the end with a live view; its exit code (0 when it worked).

    ``tick`` is called every ``every`` seconds while it runs (to sample the server).
    """
    plan.out.mkdir(parents=True, exist_ok=True)
    next_tick = time.monotonic() + every
    with (
        plan.log.open("wb") as log,
        Live(_view(plan, None), console=console, refresh_per_second=2, transient=True) as live,
    ):
        proc = subprocess.Popen(
            locust_command(plan),
            env=_environment(plan),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            while proc.poll() is None:
                live.update(_view(plan, _progress(plan.progress_file)))
                if tick is not None and time.monotonic() >= next_tick:
                    tick()
                    next_tick += every
                time.sleep(0.5)
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(30)
    return proc.returncode
