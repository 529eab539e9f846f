"""``membank bench fairness``: another tenant's searches while one key pushes its limits."""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import asdict
from pathlib import Path

import typer

from membank_cli._local_server import bench_auth, bench_security, local_server
from membank_cli.application import Application
from membank_cli.bench._fairness import FairnessPlan, FairnessReport, measure_fairness

__all__ = ["FairnessPlan", "fairness"]


def fairness(
    ctx: typer.Context,
    seconds: float = typer.Option(20.0, help="Seconds of searches, alone and under load."),
    quiet_memories: int = typer.Option(2_000, help="Memories of the searching tenant."),
    batch_items: int = typer.Option(1_000, help="Items per noisy batch."),
    as_json: bool = typer.Option(False, "--json", help="Print figures as JSON."),
) -> None:
    """One tenant's search p50/p99 alone, then while another key sends maximum batches
    and reads history at its rate limit; RSS around one maximum batch. The server is
    started here, with the default rate and concurrency limits for both tenants."""
    app = Application.of(ctx)
    plan = FairnessPlan(seconds=seconds, quiet_memories=quiet_memories, batch_items=batch_items)
    # Only the admin key is set: the tenants' keys get the default limits.
    env = {"MEMBANK_SECURITY__ADMIN_KEY": bench_security()["MEMBANK_SECURITY__ADMIN_KEY"]}
    folder = tempfile.TemporaryDirectory(prefix="membank-bench-")
    what = f"seeding, then {2 * plan.seconds:.0f} s of searches"
    with folder, app.status(what), local_server(Path(folder.name), env, quiet=True) as server:
        report = asyncio.run(measure_fairness(server.url, server.pid, bench_auth(), plan))
    if as_json:
        app.json(asdict(report))
        return
    _show(app, plan, report)


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _show(app: Application, plan: FairnessPlan, r: FairnessReport) -> None:
    app.table(
        f"membank bench fairness: the quiet tenant's text searches ({plan.quiet_concurrency} "
        f"in flight, {plan.seconds:.0f} s each)",
        ["while", "searches", "p50 ms", "p99 ms", "max ms"],
        [
            (name, f"{f.searches:,}", f"{f.p50_ms:.1f}", f"{f.p99_ms:.1f}", f"{f.max_ms:.1f}")
            for name, f in (("alone", r.alone), ("noisy key at its limits", r.loaded))
        ],
    )
    app.table(
        "the noisy key",
        ["batches done", "batches refused (429)", "history reads", "reads refused (429)",
         "RSS before / after a batch / after load, MiB"],
        [(
            f"{r.noisy_batches_done:,}", f"{r.noisy_batches_refused:,}",
            f"{r.noisy_reads_done:,}", f"{r.noisy_reads_refused:,}",
            f"{_mib(r.rss_before_batch_mib)} / {_mib(r.rss_after_batch_mib)} / "
            f"{_mib(r.rss_after_load_mib)}",
        )],
    )  # fmt: skip
