"""``membank loadtest``: the Typer command (options in, tables and an exit code out)."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import typer

from loadtests.scenarios import DEFAULT_FILE, Scenario, ScenarioError, load_scenario
from membank_cli.application import Application
from membank_cli.loadtest.hosts import checked_host
from membank_cli.loadtest.session import LoadTest, Outcome, run
from membank_cli.loadtest.slo import load_slo
from membank_cli.output import Output
from membank_server.domain.errors import ConfigError

__all__ = ["loadtest"]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _render(output: Output, outcome: Outcome, folder: Path) -> None:
    s, slo = outcome.summary, outcome.test.slo
    rows = []
    for e in (*s.endpoints, s.total):
        over = [
            name
            for name, bad in (
                ("p95", e.p95_ms is not None and e.p95_ms >= slo.p95_ms),
                ("p99", e.p99_ms is not None and e.p99_ms >= slo.p99_ms),
                ("errors", e.error_rate > slo.error_rate),
            )
            if bad
        ]
        rows.append(
            (
                e.name if e is not s.total else "[bold]all requests[/]",
                f"{e.requests:,}",
                f"{e.rps:,.1f}",
                _ms(e.p50_ms),
                _ms(e.p95_ms),
                _ms(e.p99_ms),
                _ms(e.max_ms),
                f"{e.error_rate * 100:.2f} %",
                ", ".join(over) or "ok",
            )
        )
    scenario = outcome.test.scenario
    output.table(
        f"{scenario.name}: {scenario.users} users, {scenario.duration}, {outcome.host}",
        ["endpoint", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors", "SLO"],
        rows,
    )
    output.table(
        "verdict",
        ["SLI", "objective", "measured", ""],
        [
            (c.sli, c.objective, c.measured, "[green]met[/]" if c.ok else "[red]BROKEN[/]")
            for c in outcome.verdict.checks
        ],
    )
    rss = outcome.rss_mib
    if rss.get("start") is not None and rss.get("end") is not None:
        seen = [m for _, m in outcome.rss_samples if m is not None]
        during = f" (every 10 s: {min(seen):,.0f} to {max(seen):,.0f} MiB)" if seen else ""
        output.console.print(
            f"server RSS: {rss['start']:,.0f} MiB at start, {rss['end']:,.0f} MiB at end{during}"
        )
    for endpoint, error, count in outcome.summary.failures[:5]:
        output.console.print(f"[red]{count:,} x {endpoint}: {error}[/]", highlight=False)
    output.console.print(
        f"reports: {folder}/ (report.html, locust_*.csv, summary.json)", highlight=False
    )


def loadtest(
    ctx: typer.Context,
    scenario: str = typer.Option(..., "--scenario", "-s", help="Scenario name (see --scenarios)."),
    users: int = typer.Option(None, help="Concurrent users [default: the scenario's]."),
    spawn_rate: float = typer.Option(None, help="Users started per second."),
    duration: str = typer.Option(None, help="Run time, e.g. 60s or 10m [the scenario's]."),
    host: str = typer.Option(
        None, help="A running server to load instead of starting one (loopback only)."
    ),
    api_key: str = typer.Option(
        None, envvar="MEMBANK_API_KEY", help="With --host: a key (scope all) for every tenant."
    ),
    admin_key: str = typer.Option(
        None,
        envvar="MEMBANK_ADMIN_KEY",
        help="With --host: an admin key, to make (and revoke) one key per tenant.",
    ),
    allow_remote: bool = typer.Option(
        False, "--allow-remote", help="Allow a --host outside 127.0.0.0/8, ::1 and localhost."
    ),
    start_server: bool = typer.Option(
        None, "--start-server/--no-start-server", help="Start a fresh server [default: no --host]."
    ),
    server_config: Path = typer.Option(
        None, help="TOML settings for the started server (workers, cache, storage)."
    ),
    slo: Path = typer.Option(None, help="TOML file of SLOs over the design's defaults."),
    processes: int = typer.Option(
        1, min=1, help="Locust processes; more when one cannot saturate the server."
    ),
    out: Path = typer.Option(None, help="Reports folder [default: loadtest-results/NAME-TIME]."),
    scenarios: Path = typer.Option(DEFAULT_FILE, help="Scenario file (copy and edit it)."),
    scale: float = typer.Option(1.0, min=0.0001, help="Tenants times this (0.01: a quick try)."),
    rps: float = typer.Option(
        None, help="Total requests/s to hold (a rate per user instead of think time)."
    ),
    keep_data: bool = typer.Option(
        False, help="With --host: leave the seeded tenants, memories and keys."
    ),
) -> None:
    """Load a membank server with a Locust scenario and judge it against the SLOs.

    Exits 1 when an SLO is broken, 2 for a bad option or a refused host.
    """
    app = Application.of(ctx)
    try:
        target = None if host is None else checked_host(host, allow_remote=allow_remote)
        if start_server and target is not None:
            raise ConfigError("--start-server and --host exclude each other")
        if start_server is False and target is None:
            raise ConfigError("--no-start-server needs --host")
        chosen = load_scenario(scenario, scenarios).scaled(scale)
        chosen = Scenario.from_dict(
            chosen.to_dict()
            | {
                "users": users or chosen.users,
                "spawn_rate": spawn_rate or chosen.spawn_rate,
                "duration": duration or chosen.duration,
                "rate_per_user": rps / (users or chosen.users) if rps else chosen.rate_per_user,
            }
        )
        objectives = load_slo(slo, chosen.slo)
    except ScenarioError as exc:
        app.abort(ConfigError(str(exc)))
    if importlib.util.find_spec("locust") is None:
        app.abort("membank loadtest needs Locust: pip install 'membank[loadtest]'")
    folder = out or Path("loadtest-results") / f"{scenario}-{time.strftime('%Y%m%d-%H%M%S')}"
    test = LoadTest(
        scenario=chosen,
        slo=objectives,
        out=folder,
        host=target,
        api_key=api_key,
        admin_key=admin_key,
        server_config=server_config,
        processes=processes,
        keep_data=keep_data,
    )
    outcome = run(test, app)
    (folder / "summary.json").write_text(json.dumps(outcome.to_dict(), indent=2))
    _render(app, outcome, folder)
    if not outcome.verdict.passed:
        raise typer.Exit(1)
