"""``membank bench memory``: RSS and disk per memory of the embedded store, per vector
layout (float32, int8 with rescoring, int8 with the float32 vectors on disk), after
``optimize``, with recall@10 of its searches against exact."""

from __future__ import annotations

import os

import typer

from membank_cli.application import Application
from membank_cli.bench._memory import LAYOUTS, LayoutReport, MemoryPlan, measure_layout

__all__ = ["MemoryPlan", "memory"]


def memory(
    ctx: typer.Context,
    n: int = typer.Option(100_000, "--n", min=1, help="Memories loaded (client vectors)."),
    users: int = typer.Option(500, min=1, help="Users the memories spread over."),
    queries: int = typer.Option(500, min=1, help="Searches by vector, scored against exact."),
    recall_users: int = typer.Option(100, min=1, help="Users whose vectors score searches."),
    layout: list[str] = typer.Option(
        ["float32", "int8", "int8-disk"],
        "--layout",
        "-l",
        help=f"Repeat for several: {', '.join(LAYOUTS)}.",
    ),
    dim: int = typer.Option(384, help="Vector size of the server's embedder."),
    as_json: bool = typer.Option(False, "--json", help="Print figures as JSON."),
) -> None:
    """RSS and disk per memory of a local embedded server at ``--n`` memories, one fresh
    server per layout: empty, loaded, after ``membank collection optimize`` (restarted)
    and after the searches; recall@10 of those searches against brute force."""
    app = Application.of(ctx)
    unknown = [name for name in layout if name not in LAYOUTS]
    if unknown:
        app.abort(f"unknown layout {unknown[0]!r}: --layout takes {', '.join(LAYOUTS)}")
    plan = MemoryPlan(n=n, users=users, dim=dim, queries=queries, recall_users=recall_users,
                      layouts=tuple(dict.fromkeys(layout)))  # fmt: skip
    reports: list[LayoutReport] = []
    for name in plan.layouts:
        with app.status(f"{name}: {n:,} memories, optimize, {queries:,} searches"):
            reports.append(app.run(lambda name=name: measure_layout(plan, name)))  # type: ignore[misc]
    if as_json:
        figures = {"n": n, "users": users, "dimension": dim, "cpus": os.cpu_count()}
        load = os.getloadavg()
        app.json({**figures, "load_average": load, "layouts": [r.as_json() for r in reports]})
        return
    app.table(
        f"membank bench memory: embedded store, {n:,} memories of {dim}-d over {users:,} users",
        ["layout", "phase", "RSS MiB", "of it file MiB", "disk MiB", "RSS B/memory",
         "anon B/memory", "disk B/memory"],
        [
            (r.layout, phase, f"{s.rss_bytes / 2**20:,.0f}", f"{s.rss_file_bytes / 2**20:,.0f}",
             f"{s.disk_bytes / 2**20:,.0f}",
             *(f"{per[k]:,.0f}" if phase != "empty" else "" for k in ("rss", "rss_anon", "disk")))
            for r in reports
            for phase, s in r.samples.items()
            for per in ({} if phase == "empty" else r.per_memory(phase),)
        ],
    )  # fmt: skip
    app.table(
        "after optimize: searches by vector (recall@10 against brute force, ties counted)",
        ["layout", "optimize s", "int8 segments", "recall@10", "p50 ms", "p99 ms"],
        [
            (r.layout, f"{r.optimize_seconds:,.1f}", r.quantized_segments, f"{r.recall_at_10:.4f}",
             f"{r.search_p50_ms:.2f}", f"{r.search_p99_ms:.2f}")
            for r in reports
        ],
    )  # fmt: skip
