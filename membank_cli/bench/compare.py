"""``membank bench compare``: the same workload on membank and on mem0, in one run.

membank runs as a fresh ``membank serve`` on a free loopback port and is driven
over HTTP; then, with that server stopped so each side has the machine to itself,
mem0 open source (``pip install 'membank[compare]'``) runs as a library in a
process of its own. The run is :mod:`membank_cli.compare.run`; this is the verb.
"""

from __future__ import annotations

import math

import typer

from membank_cli.application import Application
from membank_cli.compare.run import CompareReport, run_compare
from membank_cli.compare.workload import ComparePlan
from membank_cli.output import Output

__all__ = ["ComparePlan", "compare"]


def _render(out: Output, report: CompareReport) -> None:
    m, o, r, p = report.membank, report.mem0, report.ratios, report.plan

    def times(value: float | None, target: float | None = None) -> str:
        if value is None:
            return "n/a"
        mark = "" if target is None else (" [green]✓[/]" if value >= target else " [red]✗[/]")
        return f"{value:,.2f}x{mark}"

    rows = [
        ("ingest (adds/s, one at a time)", m.ingest_per_s, o.ingest_per_s, times(r["ingest_rate"])),
        ("one add p50 ms", m.ingest_p50_ms, o.ingest_p50_ms, ""),
        ("one add p99 ms", m.ingest_p99_ms, o.ingest_p99_ms, ""),
        (
            f"concurrent ingest (adds/s, {p.threads} threads)",
            m.concurrent_adds_per_s,
            o.concurrent_adds_per_s,
            times(r["concurrent_ingest_rate"]),
        ),
        ("search p50 ms", m.search_p50_ms, o.search_p50_ms, times(r["search_p50_lower_by"])),
        ("search p99 ms", m.search_p99_ms, o.search_p99_ms, times(r["search_p99_lower_by"], 10)),
        (
            f"concurrent search q/s ({p.threads} threads)",
            m.concurrent_search_qps,
            o.concurrent_search_qps,
            times(r["concurrent_search_qps"], 10),
        ),
        (
            f"concurrent ingest errors (of {p.concurrent_adds})",
            m.concurrent_ingest_errors,
            o.concurrent_ingest_errors,
            "",
        ),
        ("lost acknowledged writes", m.lost_writes, o.lost_writes, ""),
        ("search errors", m.search_errors, o.search_errors, ""),
        ("hit@1", m.hit_at_1, o.hit_at_1, ""),
    ]
    cache = "on" if p.membank_cache else "off"
    out.table(
        f"membank vs mem0: {p.memories:,} memories, {math.ceil(p.memories / p.per_user):,} "
        f"users, {p.queries:,} questions; membank cache {cache}",
        ["", "membank", "mem0", "membank vs mem0"],
        [(name, f"{a:,}", f"{b:,}", ratio) for name, a, b, ratio in rows],
    )
    for side in (m, o):
        for note, value in side.notes.items():
            if value:
                out.console.print(f"{side.name} {note}: {value}", highlight=False)


def compare(
    ctx: typer.Context,
    memories: int = typer.Option(2000, min=10, help="Memories ingested on each side."),
    per_user: int = typer.Option(20, min=1, max=30, help="Memories per user."),
    queries: int = typer.Option(500, min=1, help="Questions asked (each has one right memory)."),
    threads: int = typer.Option(8, min=1, help="Threads of the concurrent phases."),
    concurrent_adds: int = typer.Option(400, min=1, help="Memories written concurrently."),
    membank_cache: bool = typer.Option(
        False, "--membank-cache/--no-membank-cache", help="membank's result cache (mem0 has none)."
    ),
    seed: int = typer.Option(7, help="Random seed of the workload."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
) -> None:
    """Run one workload against membank (HTTP) and mem0 (library) and print the ratios."""
    app = Application.of(ctx)
    plan = ComparePlan(
        memories=memories,
        per_user=per_user,
        queries=queries,
        threads=threads,
        concurrent_adds=concurrent_adds,
        seed=seed,
        membank_cache=membank_cache,
    )
    report = run_compare(plan, app.console)
    if as_json:
        app.json(report.to_dict())
    else:
        _render(app, report)
