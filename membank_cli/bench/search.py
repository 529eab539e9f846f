"""``membank bench search``: ingest and search figures over HTTP, per backend.

Against a ``membank serve`` it starts on a free loopback port with a fresh data
folder, once per ``--backend`` (or against ``--url``, a server on this machine).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict
from pathlib import Path

import typer

from membank_cli._local_server import bench_security, local_server, rss_mib
from membank_cli.application import Application
from membank_cli.bench._http import Phase
from membank_cli.bench._search import BACKENDS, SearchPlan, measure
from membank_cli.output import Output

__all__ = ["SearchPlan", "search"]

_Run = tuple[str, float | None, list[Phase]]


def _backend_env(plan: SearchPlan, backend: str, tmp: Path) -> dict[str, str]:
    """Settings that put a fresh bench server on one backend (own schema / collection)."""
    run = f"bench_{os.getpid()}_{backend}"
    env = {"MEMBANK_STORAGE__BACKEND": backend}
    if backend in ("pgvector", "hybrid"):
        assert plan.pg_dsn is not None  # checked before the server starts
        env |= {
            "MEMBANK_STORAGE__POSTGRES__DSN": plan.pg_dsn,
            "MEMBANK_STORAGE__POSTGRES__SCHEMA": run,
        }
    if backend in ("qdrant", "hybrid"):
        where = (
            {"MEMBANK_STORAGE__QDRANT__URL": plan.qdrant_url}
            if plan.qdrant_url
            else {"MEMBANK_STORAGE__QDRANT__PATH": str(tmp / "qdrant-local")}
        )
        env |= where | {"MEMBANK_STORAGE__QDRANT__COLLECTION": run}
    if backend == "hybrid":
        env |= {"MEMBANK_STORAGE__HYBRID__SECONDARY": "qdrant" if plan.qdrant_url else "edge"}
    return env


def _check(app: Application, plan: SearchPlan) -> None:
    if plan.url and not plan.url.startswith(("http://127.", "http://localhost", "http://[::1]")):
        app.abort("bench only targets a server on this machine (127.0.0.1/localhost)")
    unknown = sorted(set(plan.backends) - set(BACKENDS))
    if unknown:
        app.abort(f"unknown backend {unknown[0]!r}: choose from {', '.join(BACKENDS)}")
    if set(plan.modes) - {"dense", "lexical", "hybrid"}:
        app.abort("--mode takes dense, lexical or hybrid")
    if "qdrant" in plan.backends and not plan.qdrant_url:
        app.warning(
            "no --qdrant-url: the qdrant backend runs on qdrant-client's local mode, which is "
            "brute force in the server's event loop; its figures say nothing about a Qdrant server"
        )


def _runs(app: Application, plan: SearchPlan) -> list[_Run]:
    def phases(target: str) -> list[Phase]:
        return app.run(lambda: measure(target, plan, app.console))

    if plan.url:
        return [("(running server)", None, phases(plan.url))]
    runs: list[_Run] = []
    for name in plan.backends:
        if name in ("pgvector", "hybrid") and not plan.pg_dsn:
            app.abort(f"--backend {name} needs --pg-dsn (or MEMBANK_STORAGE__POSTGRES__DSN)")
        with tempfile.TemporaryDirectory(prefix="membank-bench-") as tmp:
            env = {**bench_security(), **_backend_env(plan, name, Path(tmp))}
            if plan.modes:
                env["MEMBANK_CACHE__ENABLED"] = "false"  # each search embeds its query
            with local_server(Path(tmp), env) as server:
                measured = phases(server.url)
                runs.append((name, rss_mib(server.pid), measured))
    return runs


def _render(out: Output, runs: list[_Run], plan: SearchPlan) -> None:
    out.table(
        f"membank bench search: {plan.n:,} memories, {plan.users:,} users",
        ["backend", "phase", "count", "seconds", "per second", "p50 ms", "p99 ms", "RSS MiB"],
        [
            (
                backend,
                p.phase,
                f"{p.count:,}",
                f"{p.seconds:.2f}",
                f"{p.per_second:,.0f}",
                p.p50_ms if p.p50_ms is not None else "",
                p.p99_ms if p.p99_ms is not None else "",
                f"{rss:,.0f}" if rss and i == 0 else "",
            )
            for backend, rss, phases in runs
            for i, p in enumerate(phases)
        ],
    )


def _ratios(out: Output, runs: list[_Run]) -> None:
    """Each mode's text-search p50 against dense's, per backend."""
    for backend, _, phases in runs:
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
    )
    _check(app, plan)
    runs = _runs(app, plan)
    if not as_json:
        _render(app, runs, plan)
        _ratios(app, runs)
        return
    app.json(
        {
            "n": plan.n,
            "users": plan.users,
            "runs": [
                {"backend": b, "server_rss_mib": rss, "phases": [asdict(p) for p in ph]}
                for b, rss, ph in runs
            ],
        }
    )
