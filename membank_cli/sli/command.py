"""``membank sli``: availability, latency, errors and throughput of a running server.

Reads ``GET /v1/admin/sli?window=`` (an admin key), which sums the request
windows the server sampled into its history plus what came since the last
sample, and judges them against the server's ``[observe.slo]`` targets (the
design's by default: the same objectives ``membank loadtest`` judges a run by).
"""

from __future__ import annotations

from typing import Any

import typer

from membank_cli._server import KeyOption, UrlOption, checked, reaching, server_client
from membank_cli.application import Application

__all__ = ["sli"]

_ROWS = (
    # key in the answer, SLI, objective key, how the objective reads, format
    ("availability", "availability", "availability", ">= {:.3%}", "{:.3%}"),
    ("error_rate", "error rate", "error_rate", "<= {:.3%}", "{:.3%}"),
    ("p95_ms", "p95", "p95_ms", "< {:g} ms", "{:.1f} ms"),
    ("p99_ms", "p99", "p99_ms", "< {:g} ms", "{:.1f} ms"),
    ("rps", "throughput", "min_rps", "> {:,.0f} req/s", "{:,.1f} req/s"),
)


def _verdict(met: bool | None) -> str:
    return "n/a" if met is None else ("[green]met[/]" if met else "[red]broken[/]")


def sli(
    ctx: typer.Context,
    window: str = typer.Option("1h", help="How far back: 90s, 15m, 1h, 7d or 2w."),
    url: str = UrlOption,
    api_key: str = KeyOption,
    as_json: bool = typer.Option(False, "--json", help="Print the answer as JSON."),
    check: bool = typer.Option(False, help="Exit 1 when an objective is broken."),
) -> None:
    """Show the server's SLIs over a window, against its SLOs, with the error budget left."""
    app = Application.of(ctx)
    with reaching(url), server_client(url, api_key) as http:
        report: dict[str, Any] = checked(http.get("/v1/admin/sli", params={"window": window}))
    if as_json:
        app.json(report)
    else:
        objectives, met = report["objectives"], report["met"]
        rows = []
        for key, name, objective, wanted, shown in _ROWS:
            value = report[key]
            measured = "n/a" if value is None else shown.format(value)
            rows.append((name, wanted.format(objectives[objective]), measured, _verdict(met[key])))
        budget = report["error_budget"]
        app.table(
            f"SLIs over {window}: {report['requests']:,} requests in "
            f"{report['window_seconds']:,.0f} s ({report['server_errors']:,} 5xx, "
            f"{report['client_errors']:,} 4xx)",
            ["SLI", "objective", "measured", "verdict"],
            rows,
        )
        app.console.print(
            "error budget: "
            + ("n/a (no request)" if budget is None else f"{budget:.1%} left of the window's"),
            highlight=False,
        )
    if check and any(v is False for v in report["met"].values()):
        raise typer.Exit(1)
