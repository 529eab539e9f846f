"""``membank bench index``: the longest pause clients see while the embedded store
builds its HNSW index."""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from pathlib import Path

import typer
from rich.progress import Progress

from membank_cli._local_server import bench_security, local_server
from membank_cli.application import Application
from membank_cli.bench._index import IndexPlan, IndexReport, measure_index_build

__all__ = ["index"]


def index(
    ctx: typer.Context,
    n: int = typer.Option(100_000, "--n", help="Memories stored before the build."),
    users: int = typer.Option(10, help="Users the memories outside the big tenant spread over."),
    big_share: float = typer.Option(0.2, help="Share of the memories in the probed tenant."),
    idle: float = typer.Option(5.0, help="Seconds probed before the build and after it."),
    write_every: float = typer.Option(0.05, help="Seconds between writes during the build."),
    seed: int = typer.Option(7, help="Random seed of the vectors."),
    as_json: bool = typer.Option(False, "--json", help="Print figures as JSON."),
) -> None:
    """Store memories with client vectors in a server on this machine, then build the
    embedded store's index while one client searches back to back and another writes:
    search latency before, during and after the build (its max is the longest pause),
    the build's time, and whether every write acknowledged during it was kept."""
    app = Application.of(ctx)
    if n < 1 or users < 1 or not 0 < big_share <= 1 or idle < 0 or write_every < 0:
        app.abort("--n and --users must be positive, --big-share in (0, 1], times not negative")
    plan = IndexPlan(
        n=n, users=users, big_share=big_share, idle=idle, write_every=write_every, seed=seed
    )
    with (
        tempfile.TemporaryDirectory(prefix="membank-bench-") as tmp,
        local_server(Path(tmp), bench_security()) as server,
        Progress(console=app.console, transient=True) as progress,
    ):
        report = app.run(lambda: measure_index_build(server.url, plan, progress))
    if as_json:
        app.json(asdict(report))
        return
    _render(app, report)


def _render(app: Application, r: IndexReport) -> None:
    app.table(
        f"membank bench index: {r.memories:,} memories (probed tenant {r.big_tenant:,}), "
        f"build {r.build_seconds:.1f} s, load average {r.load_average}",
        ["requests", "count", "p50 ms", "p99 ms", "max ms (longest pause)"],
        [
            (p.phase, f"{p.count:,}", f"{p.p50_ms:.2f}", f"{p.p99_ms:.2f}", f"{p.max_ms:.1f}")
            for p in [*r.probes, *([r.writes] if r.writes else [])]
        ],
    )
    line = (
        f"indexed vectors {r.indexed_before:,} -> {r.indexed_after:,}; "
        f"{r.writes_during_build:,} writes during the build, {r.writes_missing_after} missing after"
    )
    if r.build_error or r.writes_missing_after:
        app.abort(f"{line}; build error: {r.build_error}")
    app.success(line)
