"""``membank cache warmup|stats|flush``: the cache of a running server, over HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.progress import Progress

from membank_cli._server import (
    KeyOption,
    UrlOption,
    auth_headers,
    checked,
    reaching,
    server_client,
)
from membank_cli.application import Application

__all__ = ["cli"]

cli = typer.Typer(
    help="Warm, inspect or flush the search cache of a running server.", no_args_is_help=True
)


def _get(url: str, key: str | None, path: str, **params: Any) -> Any:
    with reaching(url), server_client(url, key) as http:
        return checked(http.get(path, params=params))


async def _replay(
    console: Console, url: str, key: str | None, bodies: list[dict[str, Any]], batch_size: int
) -> dict[str, int]:
    outcomes = {"warmed": 0, "already_cached": 0, "failed": 0}
    async with httpx.AsyncClient(base_url=url, timeout=60, headers=auth_headers(key)) as http:
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("warming", total=len(bodies))
            for start in range(0, len(bodies), batch_size):
                batch = bodies[start : start + batch_size]
                answers = await asyncio.gather(*(http.post("/v1/search", json=b) for b in batch))
                for r in answers:
                    if r.status_code != 200:
                        outcomes["failed"] += 1
                    elif r.json().get("cache") == "hit":
                        outcomes["already_cached"] += 1
                    else:
                        outcomes["warmed"] += 1
                progress.advance(task, len(batch))
    return outcomes


@cli.command()
def warmup(
    ctx: typer.Context,
    strategy: str = typer.Option(
        "eager",
        help="eager: replay now; lazy: the server warms in the background; "
        "scheduled: show the server's cron schedule (set cache.warmup_strategy there).",
    ),
    sample: float = typer.Option(0.1, min=0.0001, max=1.0, help="Fraction of users to warm."),
    batch_size: int = typer.Option(32, min=1, help="Searches replayed at once."),
    top: int = typer.Option(50, min=1, help="How many of the most asked searches to consider."),
    url: str = UrlOption,
    key: str | None = KeyOption,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Replay the most asked searches of a sample of users so they are cache hits."""
    app = Application.of(ctx)
    if strategy == "scheduled":
        stats = _get(url, key, "/v1/cache/stats")["warmup"]
        if stats["strategy"] != "scheduled":
            app.abort(
                "the server has no schedule: start it with cache.warmup_strategy=scheduled "
                "and cache.warmup_cron='*/15 * * * *'"
            )
        app.json(stats) if as_json else app.success(f"server warms on cron {stats['cron']!r}")
        return
    if strategy == "lazy":
        with reaching(url), server_client(url, key) as http:
            checked(
                http.post(
                    "/v1/cache/warmup",
                    json={
                        "strategy": "lazy",
                        "sample": sample,
                        "batch_size": batch_size,
                        "top": top,
                    },
                )
            )
        app.success("the server is warming its cache in the background")
        return
    if strategy != "eager":
        app.abort("--strategy is eager, lazy or scheduled")
    items = _get(url, key, "/v1/cache/popular", k=top, sample=sample)["items"]

    async def work() -> dict[str, int]:
        return await _replay(app.console, url, key, [i["search"] for i in items], batch_size)

    outcomes = app.run(work)
    summary = {"selected": len(items), "users": len({i["user_id"] for i in items}), **outcomes}
    if as_json:
        app.json(summary)
    else:
        app.table("cache warmup", ["", "count"], summary.items())


@cli.command()
def stats(
    ctx: typer.Context,
    url: str = UrlOption,
    key: str | None = KeyOption,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Hits, misses and hit ratio per cache level, as the server counts them."""
    app = Application.of(ctx)
    data = _get(url, key, "/v1/cache/stats")
    if as_json or not data["enabled"]:
        app.json(data)
        return
    rows = [
        (name, c.get("hit", 0), c.get("miss", 0), c.get("error", 0), c.get("hit_ratio"))
        for name, c in data["levels"].items()
    ]
    s = data["searches"]
    rows.append(
        (
            "searches",
            s.get("hit", 0),
            s.get("miss", 0),
            s.get("bypass", 0),
            data["search_hit_ratio"],
        )
    )
    app.table("membank cache", ["level", "hits", "misses", "errors/bypass", "hit ratio"], rows)


@cli.command()
def flush(
    ctx: typer.Context,
    user: str = typer.Option(None, "--user", help="Only this user's cached searches."),
    url: str = UrlOption,
    key: str | None = KeyOption,
) -> None:
    """Drop cached searches (and, without --user, cached embeddings)."""
    app = Application.of(ctx)
    params = {"user_id": user} if user else {}
    with reaching(url), server_client(url, key) as http:
        n = checked(http.delete("/v1/cache", params=params))["flushed"]
    app.success(f"flushed {n} cache entries")
