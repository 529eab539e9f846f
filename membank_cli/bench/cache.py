"""``membank bench cache``: cached search throughput against the framework ceiling (wrk)."""

from __future__ import annotations

from dataclasses import asdict

import typer

from membank_cli.application import Application
from membank_cli.bench._cache import CachePlan, run_cached

__all__ = ["CachePlan", "cache"]


def cache(
    ctx: typer.Context,
    redis_url: str = typer.Option(
        None, envvar="MEMBANK_CACHE__REDIS_URL", help="Redis for the L2 run."
    ),
    users: int = typer.Option(1_000, help="Distinct users the memories spread over."),
    seconds: int = typer.Option(10, help="Seconds per wrk run."),
    as_json: bool = typer.Option(False, "--json", help="Print figures as JSON."),
) -> None:
    """Cached search: L1 hits, L2 hits, misses vs bare Litestar (wrk)."""
    app = Application.of(ctx)
    if not redis_url:
        app.abort("bench cache needs --redis-url (or MEMBANK_CACHE__REDIS_URL) for its L2 run")
    if not redis_url.startswith(("redis://127.", "redis://localhost")):
        app.abort("bench only targets services on this machine")
    plan = CachePlan(redis_url=redis_url, seconds=seconds, users=users)
    runs = run_cached(plan)
    if as_json:
        app.json([asdict(r) for r in runs])
        return
    app.table(
        f"membank bench cache: wrk -t1 -c{plan.connections} -d{plan.seconds}s, one uvicorn worker",
        ["run", "requests/s", "p50 ms", "p99 ms", "of ceiling"],
        [
            (
                r.name,
                f"{r.requests_per_second:,.0f}",
                f"{r.p50_ms:.2f}",
                f"{r.p99_ms:.2f}",
                f"{r.of_ceiling:.2f}",
            )
            for r in runs
        ],
    )
