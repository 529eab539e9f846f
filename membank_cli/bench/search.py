"""``membank bench search``: ingest and search figures over HTTP, per backend.

Against a ``membank serve`` it starts on a free loopback port with a fresh data
folder (or a kept one, ``--data``), once per ``--backend`` (or against ``--url``, a
server on this machine). Figures: ingest rates, index builds, search p50/p99/max,
and the server's RSS and the data's disk per stored memory.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import typer

from membank_cli.application import Application
from membank_cli.bench._runs import Run, check, runs
from membank_cli.bench._scale import per_memory
from membank_cli.bench._search import SearchPlan
from membank_cli.output import Output

__all__ = ["SearchPlan", "search"]


def _ms(value: float | None) -> str | float:
    return value if value is not None else ""


def _render(out: Output, done: list[Run], plan: SearchPlan) -> None:
    out.table(
        f"membank bench search: {plan.n:,} memories, {plan.users:,} users"
        + (f", {plan.skew:.0%} in one tenant" if plan.skew else ""),
        ["backend", "phase", "count", "seconds", "per second", "p50 ms", "p99 ms", "max ms"],
        [
            (run.backend, p.phase, f"{p.count:,}", f"{p.seconds:.2f}", f"{p.per_second:,.0f}",
             _ms(p.p50_ms), _ms(p.p99_ms), _ms(p.max_ms))
            for run in done
            for p in run.phases
        ],
    )  # fmt: skip
    stored = plan.n + plan.embed_n
    out.table(
        f"footprint at {stored:,} memories (RSS after the searches)",
        ["backend", "RSS MiB", "of it file MiB", "RSS B/memory", "disk MiB", "disk B/memory",
         "HNSW MiB"],
        [
            (run.backend, _mib(run.rss_bytes), _mib(run.rss_file_bytes),
             _num(per_memory(run.rss_bytes, stored)), _mib(run.disk_bytes),
             _num(per_memory(run.disk_bytes, stored)),
             _mib(run.index_bytes))
            for run in done
        ],
    )  # fmt: skip


def _mib(value: int | None) -> str:
    return f"{value / 2**20:,.0f}" if value is not None else ""


def _num(value: float | None) -> str:
    return f"{value:,.0f}" if value is not None else ""


def _as_json(run: Run, stored: int) -> dict[str, Any]:
    return {
        "backend": run.backend,
        "server_rss_mib": round(run.rss_bytes / 2**20, 1) if run.rss_bytes else None,
        "server_rss_file_mib": round(run.rss_file_bytes / 2**20, 1) if run.rss_file_bytes else None,
        "rss_bytes_per_memory": per_memory(run.rss_bytes, stored),
        "disk_bytes": run.disk_bytes,
        "disk_bytes_per_memory": per_memory(run.disk_bytes, stored),
        "hnsw_index_bytes": run.index_bytes,
        "phases": [asdict(p) for p in run.phases],
    }


def _ratios(out: Output, runs: list[Run]) -> None:
    """Each mode's text-search p50 against dense's, per backend."""
    for run in runs:
        backend, phases = run.backend, run.phases
        p50 = {
            p.phase.split(", ")[2].split(" ")[0]: p.p50_ms
            for p in phases
            if p.phase.startswith("search, text, ")
        }
        dense = p50.get("dense")
        for mode, value in p50.items():
            if dense and value is not None and mode != "dense":
                out.success(f"{backend}: {mode} p50 / dense p50 = {value / dense:.2f}")


def search(
    ctx: typer.Context,
    n: int = typer.Option(100_000, "--n", help="Memories ingested with client vectors."),
    users: int = typer.Option(1_000, help="Distinct users the memories spread over."),
    embed_n: int = typer.Option(2_000, "--embed-n", help="Memories ingested with embedding."),
    searches: int = typer.Option(5_000, help="Searches with client vectors."),
    text_searches: int = typer.Option(500, help="Searches with a text query."),
    concurrency: int = typer.Option(4, help="Requests in flight during searches."),
    dim: int = typer.Option(384, help="Vector size of the server's embedder."),
    backend: list[str] = typer.Option(
        ["edge"], "--backend", "-b", help="edge, qdrant, pgvector or hybrid; repeat to compare."
    ),
    pg_dsn: str = typer.Option(
        None, envvar="MEMBANK_STORAGE__POSTGRES__DSN", help="PostgreSQL for pgvector/hybrid."
    ),
    qdrant_url: str = typer.Option(
        None, help="A Qdrant server for qdrant/hybrid (else qdrant-client local mode)."
    ),
    url: str = typer.Option(None, help="Bench a running server instead of starting one."),
    seed: int = typer.Option(7, help="Random seed."),
    mode: list[str] = typer.Option(
        [], "--mode", "-m", help="Compare text search in these modes (dense, lexical, hybrid)."
    ),
    skew: float = typer.Option(
        0.0, help="Share of the memories one tenant (user-big) holds; searched as its own phase."
    ),
    data: Path = typer.Option(
        None, help="Keep the data set here (pgvector: a schema named after it) and reuse it."
    ),
    optimize: bool = typer.Option(
        False, help="Build the embedded store's HNSW index (collection optimize) before serving."
    ),
    pg_index_after: str = typer.Option(
        None,
        help="pgvector: drop the HNSW index for the load, make it after with this "
        "maintenance_work_mem (e.g. 2GB), timed.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print figures as JSON."),
) -> None:
    """Measure ingest rate and search latency (p50/p99) over HTTP at N memories, per backend."""
    app = Application.of(ctx)
    plan = SearchPlan(
        n=n,
        embed_n=embed_n,
        users=users,
        searches=searches,
        text_searches=text_searches,
        concurrency=concurrency,
        dim=dim,
        seed=seed,
        backends=tuple(backend),
        pg_dsn=pg_dsn,
        qdrant_url=qdrant_url,
        url=url,
        modes=tuple(mode),
        skew=skew,
        data=data,
        optimize=optimize,
        pg_index_after=pg_index_after,
    )
    check(app, plan)
    done = runs(app, plan)
    if not as_json:
        _render(app, done, plan)
        _ratios(app, done)
        return
    stored = plan.n + plan.embed_n
    app.json(
        {
            "n": plan.n,
            "users": plan.users,
            "skew": plan.skew,
            "runs": [_as_json(run, stored) for run in done],
        }
    )
