"""``membank bench hotpath``: a cached, authenticated search against bare Litestar."""

from __future__ import annotations

from dataclasses import asdict

import typer

from membank_cli.application import Application
from membank_cli.bench._hotpath import HotPlan, run_hotpath

__all__ = ["hotpath"]


def hotpath(
    ctx: typer.Context,
    redis_url: str = typer.Option(
        None, envvar="MEMBANK_CACHE__REDIS_URL", help="Redis of the rate limiter and cache."
    ),
    seconds: float = typer.Option(10.0, help="Seconds per run."),
    connections: int = typer.Option(32, help="Open connections of the generator."),
    generator: str = typer.Option(
        "auto", help="Load generator: auto (wrk if on PATH, else python), wrk or python."
    ),
    rounds: int = typer.Option(1, help="Alternating runs per server; medians are kept."),
    as_json: bool = typer.Option(False, "--json", help="Print figures as JSON."),
) -> None:
    """Cached search with auth, rate limit, audit and metrics on, against a bare Litestar
    route answering the same bytes: same generator, same settings, one after the other."""
    app = Application.of(ctx)
    if generator not in ("auto", "wrk", "python"):
        app.abort("--generator is auto, wrk or python")
    if not redis_url:
        app.abort("bench hotpath needs --redis-url (or MEMBANK_CACHE__REDIS_URL)")
    if not redis_url.startswith(("redis://127.", "redis://localhost")):
        app.abort("bench only targets services on this machine")
    if seconds <= 0 or connections < 1 or rounds < 1:
        app.abort("--seconds, --connections and --rounds must be positive")
    plan = HotPlan(redis_url, seconds, connections, generator, rounds)
    with app.status("membank and bare Litestar, one after the other"):
        report = run_hotpath(plan)
    if as_json:
        app.json(asdict(report))
        return
    app.table(
        f"membank bench hotpath: {report.generator}, {report.connections} connections, "
        f"{report.seconds:g} s per run; membank / ceiling = {report.of_ceiling:.2f}",
        ["server", "requests/s", "p50 ms", "p99 ms", "server CPU", "generator CPU"],
        [
            (
                "bare Litestar (ceiling)" if r.server == "ceiling" else "membank, L1 hit",
                f"{r.requests_per_second:,.0f}",
                f"{r.p50_ms:.2f}",
                f"{r.p99_ms:.2f}",
                f"{r.server_cpu:.2f}",
                f"{r.generator_cpu:.2f}",
            )
            for r in report.runs
        ],
    )
