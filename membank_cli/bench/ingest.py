"""``membank bench ingest``: ingest and query-embedding throughput beside the raw embedder."""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from pathlib import Path

import typer

from membank_cli._local_server import bench_security, local_server
from membank_cli.application import Application
from membank_cli.bench._http import Phase
from membank_cli.bench._ingest import IngestPlan, Scaling, measure_embedder, measure_server

__all__ = ["IngestPlan", "ingest"]


def _ratios(raw: list[Phase], served: list[Phase]) -> list[tuple[str, float]]:
    """The figures the pipeline is judged by: each beside the raw embedder's."""
    raw_ingest, raw_query = raw[0].per_second, raw[1].per_second
    return [
        *((p.phase, p.per_second / raw_ingest) for p in served[:3]),
        (served[3].phase, served[3].per_second / raw_query),
    ]


def ingest(
    ctx: typer.Context,
    n: int = typer.Option(2_000, "--n", help="Texts per phase (batches, pipeline, raw)."),
    single: int = typer.Option(400, help="Texts written one request each."),
    batch: int = typer.Option(100, help="Items per synchronous batch request."),
    job: int = typer.Option(1_000, help="Items per asynchronous job."),
    users: int = typer.Option(50, help="Users the texts spread over."),
    clients: int = typer.Option(8, help="Requests in flight: single writes and searches."),
    queries: int = typer.Option(800, help="Searches by text (each embedded)."),
    seed: int = typer.Option(7, help="Random seed of the texts."),
    batcher: bool = typer.Option(
        True, "--batcher/--no-batcher", help="The server batches embedding calls (default)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print figures as JSON."),
) -> None:
    """Embedding throughput: the raw embedder, then synchronous single writes, synchronous
    batches, the asynchronous pipeline and concurrent searches of a server on this machine."""
    app = Application.of(ctx)
    plan = IngestPlan(
        n=n, single=single, batch=batch, job=job, users=users, clients=clients,
        queries=queries, raw_batch=app.settings.jobs.batcher.max_texts, seed=seed,
    )  # fmt: skip
    switch = {"MEMBANK_JOBS__BATCHER__ENABLED": "true" if batcher else "false"}
    embedder = app.embedder()
    with app.status("raw embedder (no server)"):
        raw = app.run(lambda: measure_embedder(embedder, plan))
    with (
        tempfile.TemporaryDirectory(prefix="membank-bench-") as tmp,
        local_server(Path(tmp), {**bench_security(), **switch}) as server,
    ):
        served, scaling = app.run(lambda: measure_server(server.url, plan, app.console))
    ratios = _ratios(raw, served)
    if as_json:
        app.json(
            {
                "phases": [asdict(p) for p in raw + served],
                "ratio_to_raw": dict(ratios),
                "scaling": asdict(scaling),
            }
        )
        return
    _render(app, raw, served, ratios, scaling)


def _render(
    app: Application, raw: list[Phase], served: list[Phase], ratios: list[tuple[str, float]],
    scaling: Scaling,
) -> None:  # fmt: skip
    ratio = dict(ratios)
    app.table(
        "membank bench ingest (every text embedded)",
        ["phase", "count", "seconds", "per second", "x raw", "p50 ms", "p99 ms"],
        [
            (p.phase, f"{p.count:,}", f"{p.seconds:.2f}", f"{p.per_second:,.1f}",
             f"{ratio[p.phase]:.2f}" if p.phase in ratio else "",
             p.p50_ms if p.p50_ms is not None else "", p.p99_ms if p.p99_ms is not None else "")
            for p in raw + served
        ],
    )  # fmt: skip
    app.success(
        f"embed_store pool: up to {scaling.max_workers} workers, queue depth up to "
        f"{scaling.max_depth:,}, {scaling.end_workers} worker(s) once idle; texts per "
        f"embedder call: {scaling.small_batch:.1f} (small lane), {scaling.bulk_batch:.1f} (bulk)"
    )
