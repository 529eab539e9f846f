"""``membank capacity plan|calibrate``: the capacity group's commands, kept thin."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import typer

from membank_cli._server import KeyOption, UrlOption
from membank_cli.application import Application
from membank_cli.capacity.calibrate import as_rows, calibrate_run
from membank_cli.capacity.model import BACKENDS
from membank_cli.capacity.prices import load_prices
from membank_cli.capacity.prometheus import PrometheusHistory
from membank_cli.capacity.remote import ServerHistory
from membank_cli.capacity.render import FORMATS, render
from membank_cli.capacity.simulate import SimulatedHistory, Simulation
from membank_cli.capacity.sqlite import SqliteHistory
from membank_server.domain.capacity import HistorySource
from membank_server.domain.errors import MembankError

__all__ = ["cli"]

cli = typer.Typer(
    help="Plan capacity: forecast growth, size machines, price them.", no_args_is_help=True
)

#: Run-out dates are searched this far ahead, past the horizon when need be.
_SEARCH_DAYS = 3 * 365
_UNITS = {"d": 1, "w": 7, "m": 30, "y": 365}


def _days(text: str, option: str) -> int:
    m = re.fullmatch(r"\s*(\d+)\s*([dwmy]?)\s*", text)
    if not m or int(m.group(1)) == 0:
        raise MembankError(f"{option} takes a duration like 90d, 12w, 6m or 1y, not {text!r}")
    return int(m.group(1)) * _UNITS[m.group(2) or "d"]


def _source(
    simulate: bool,
    growth: float,
    history: Path | None,
    prometheus: str | None,
    selector: str,
    url: str,
    api_key: str | None,
) -> HistorySource:
    chosen = [
        n
        for n, on in (
            ("--simulate", simulate),
            ("--history", history),
            ("--prometheus", prometheus),
        )
        if on
    ]
    if len(chosen) > 1:
        raise MembankError(f"choose one history: {' and '.join(chosen)} were both given")
    if simulate:
        return SimulatedHistory(Simulation(rate=growth))
    if history:
        return SqliteHistory(history)
    if prometheus:
        return PrometheusHistory(prometheus, selector=selector)
    return ServerHistory(url, api_key)


@cli.command()
def plan(
    ctx: typer.Context,
    horizon: str = typer.Option("90d", help="How far ahead to size for: 90d, 12w, 6m, 1y."),
    growth_buffer: float = typer.Option(
        0.2, min=0.0, max=5.0, help="Head-room on top of the forecast."
    ),
    confidence: float = typer.Option(
        0.9, min=0.5, max=0.999, help="Share of outcomes inside the band; sizing uses its top."
    ),
    prices: Path = typer.Option(None, help="Price table TOML [default: an example AWS list]."),
    target_backend: str = typer.Option(
        None, help="edge, qdrant or pgvector [default: the history's]."
    ),
    fmt: str = typer.Option("table", "--format", help="table, json, markdown or html."),
    chart: Path = typer.Option(None, help="Write a chart: FILE.png or FILE.html (offline)."),
    simulate: bool = typer.Option(False, help="Plan on a generated history (labelled simulated)."),
    simulate_growth: float = typer.Option(
        0.012, help="--simulate: memory growth a day (0.012 = 1.2 %)."
    ),
    history: Path = typer.Option(None, help="Read a SQLite history file."),
    prometheus: str = typer.Option(None, help="Read a Prometheus server at this URL."),
    prometheus_selector: str = typer.Option("", help='Label selector, e.g. job="membank".'),
    url: str = UrlOption,
    api_key: str = KeyOption,
    since: str = typer.Option("120d", help="How much history to read."),
    current: str = typer.Option(
        None, help="Today's instance, by name in the price table [default: the smallest that fits]."
    ),
    disk_gib: float = typer.Option(100.0, help="Today's volume size in GiB."),
    rps_per_core: float = typer.Option(
        110.0,
        help="Requests a second one core serves, used when CPU was not sampled "
        "(membank bench search: ~105 text searches a core on 2 vCPU).",
    ),
) -> None:
    """Forecast memories, RAM, disk, requests and CPU: when each runs out, what to run, its cost."""
    app = Application.of(ctx)
    if fmt not in FORMATS:
        app.abort(f"--format must be one of {', '.join(FORMATS)}")
    if target_backend and target_backend not in BACKENDS:
        app.abort(f"--target-backend must be one of {', '.join(BACKENDS)}")
    if chart and chart.suffix.lower() not in (".png", ".html", ".htm"):
        app.abort("--chart takes a .png or .html file")
    # statsmodels, pandas and matplotlib cost 125 MiB and a second: only when planning,
    # never in every `membank` process (`membank serve` imports this module too).
    from membank_cli.capacity.chart import write_chart
    from membank_cli.capacity.forecast import forecast_samples
    from membank_cli.capacity.plan import make_plan

    days = _days(horizon, "--horizon")
    lookback = timedelta(days=_days(since, "--since"))
    source = _source(
        simulate, simulate_growth, history, prometheus, prometheus_selector, url, api_key
    )
    try:
        table_ = load_prices(prices)
        samples = app.run(lambda: source.samples(datetime.now(UTC) - lookback))
        if not samples:
            app.abort(
                f"no samples in the history ({source.label}) for the last {since}: a server "
                "samples itself every observe.sample_seconds; until it has, plan on --simulate"
            )
        forecasts = forecast_samples(samples, max(days, _SEARCH_DAYS), confidence=confidence)
        last = samples[-1]
        backend = target_backend or (last.backend if last.backend in BACKENDS else "qdrant")
        result = make_plan(
            forecasts,
            source=source.label,
            backend=backend,
            history_backend=last.backend,
            dimension=last.dimension,
            horizon_days=days,
            confidence=confidence,
            growth_buffer=growth_buffer,
            prices=table_,
            current=table_.by_name(current) if current else None,
            disk_gib=disk_gib,
            rps_per_core=rps_per_core,
        )
    except ValueError as exc:
        app.abort(str(exc))
    for note in source.notes:
        app.warning(note)
    render(result, fmt, app.console)
    if chart:
        write_chart(result, chart)
        app.success(f"chart written to {chart}")


@cli.command()
def calibrate(
    ctx: typer.Context,
    backend: str = typer.Option("edge", help="edge or pgvector."),
    at: str = typer.Option(
        "10000,50000,100000", help="Checkpoints: memory counts, comma-separated."
    ),
    users: int = typer.Option(500, help="Distinct users the memories spread over."),
    dim: int = typer.Option(384, help="Vector size of the server's embedder."),
    pg_dsn: str = typer.Option(
        None, envvar="MEMBANK_STORAGE__POSTGRES__DSN", help="PostgreSQL for --backend pgvector."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
) -> None:
    """Measure a fresh local server's RSS and disk per memory at a few memory counts."""
    app = Application.of(ctx)
    checkpoints = [int(x) for x in at.split(",") if x.strip()]
    points = app.run(
        lambda: calibrate_run(backend, checkpoints, users=users, dim=dim, pg_dsn=pg_dsn)
    )
    rows = as_rows(points)
    if as_json:
        app.json(
            {
                "backend": backend,
                "dimension": dim,
                "users": users,
                "cpus": os.cpu_count(),
                "points": rows,
            }
        )
        return
    app.table(
        f"membank capacity calibrate: {backend}, {dim}-d, {users} users",
        [
            "memories",
            "RSS MiB",
            "of it file MiB",
            "disk MiB",
            "index MiB",
            "RSS B/memory",
            "disk B/memory",
        ],
        [
            (
                f"{r['memories']:,}",
                f"{r['rss_bytes'] / 2**20:,.1f}",
                f"{r['rss_file_bytes'] / 2**20:,.1f}",
                f"{r['disk_bytes'] / 2**20:,.1f}",
                f"{r['index_bytes'] / 2**20:,.1f}" if r["index_bytes"] is not None else "",
                f"{r['rss_per_memory']:,.0f}" if r["rss_per_memory"] is not None else "",
                f"{r['disk_per_memory']:,.0f}" if r["disk_per_memory"] is not None else "",
            )
            for r in rows
        ],
    )
