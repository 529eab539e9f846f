"""``membank tune [--apply]`` and ``membank tune history``: the tuner of a running server."""

from __future__ import annotations

import typer

from membank_cli._server import KeyOption, UrlOption, checked, reaching, server_client
from membank_cli.application import Application
from membank_cli.tune.session import SessionReport, Tuner
from membank_server.domain.errors import MembankError

__all__ = ["cli"]

cli = typer.Typer(
    help="Find a running server's bottlenecks and tune it, one change at a time.",
    invoke_without_command=True,
)


def _forced(values: list[str]) -> list[tuple[str, float]]:
    found = []
    for text in values:
        name, sep, value = text.partition("=")
        try:
            found.append((name.strip(), float(value)))
        except ValueError:
            sep = ""
        if not sep:
            raise MembankError(f"--set takes NAME=VALUE (a number), not {text!r}")
    return found


def _score(value: float | None, objective: str) -> str:
    if value is None:
        return "n/a"
    return {"p99": f"{value:.1f} ms", "throughput": f"{value:,.1f} req/s"}.get(
        objective, f"{value / 2**20:,.0f} MiB"
    )


def _show(app: Application, r: SessionReport) -> None:
    b = r.baseline
    app.console.print(
        f"session {r.session}: {b.requests:,} requests in {b.seconds:.0f} s, "
        f"p99 {_score(b.p99_ms, 'p99')}, {b.rps:,.1f} req/s, CPU {b.cpu_share:.0%}, "
        f"memory {b.memory_share:.0%}, hit ratio "
        + (", ".join(f"{k} {v:.2f}" for k, v in b.hit_ratio.items() if v is not None) or "n/a"),
        highlight=False,
    )
    for line in r.bottlenecks or ["no bottleneck by the design's thresholds"]:
        app.console.print(f"  - {line}", highlight=False)
    app.table(
        f"changes (objective: {r.objective})",
        ["tunable", "from", "to", "why", "outcome", "before", "after"],
        [
            (d.proposal.tunable, f"{d.proposal.old:g}", f"{d.proposal.new:g}", d.proposal.reason,
             d.outcome, _score(d.before, r.objective), _score(d.after, r.objective))
            for d in r.decisions
        ],
    )  # fmt: skip


@cli.callback()
def tune(
    ctx: typer.Context,
    apply: bool = typer.Option(False, help="Apply live changes one at a time (else propose)."),
    objective: str = typer.Option("p99", help="p99, throughput or memory."),
    window: float = typer.Option(30.0, min=1.0, help="Seconds of traffic each measurement reads."),
    stability: float = typer.Option(
        10.0, min=0.0, help="Seconds a change settles before it is measured."
    ),
    margin: float = typer.Option(
        0.05, min=0.0, max=0.9, help="Improvement a change must bring to be kept (0.05 = 5 %)."
    ),
    max_changes: int = typer.Option(3, min=1, help="Most changes applied in one session."),
    set_: list[str] = typer.Option(
        [], "--set", help="Try this change (NAME=VALUE) instead of the proposals; repeatable."
    ),
    url: str = UrlOption,
    api_key: str = KeyOption,
) -> None:
    """Measure live traffic, find bottlenecks (CPU > 80 %, memory > 85 %, p99 > 200 ms,
    cache hit ratio < 0.8, queue > 80 % full) and propose changes; with --apply, apply
    each live one, measure again after the stability period, keep it if the objective
    improved and put it back if not. Changes that take a restart are only proposed."""
    if ctx.invoked_subcommand is not None:
        return
    app = Application.of(ctx)
    forced = _forced(set_)
    with reaching(url), server_client(url, api_key) as http:
        tuner = Tuner(
            http, objective=objective, window=window, stability=stability, margin=margin,
            say=lambda m: app.console.print(m, highlight=False),
        )  # fmt: skip
        report = tuner.run(apply=apply, forced=forced or None, max_changes=max_changes)
    _show(app, report)


@cli.command()
def history(
    ctx: typer.Context,
    limit: int = typer.Option(200, min=1, max=10_000, help="The last N events."),
    url: str = UrlOption,
    api_key: str = KeyOption,
    as_json: bool = typer.Option(False, "--json", help="Print the events as JSON."),
) -> None:
    """Every tuning session and its decisions, as the server's journal has them."""
    app = Application.of(ctx)
    with reaching(url), server_client(url, api_key) as http:
        events = checked(http.get("/v1/admin/tuning", params={"limit": limit}))
    if as_json:
        app.json(events)
        return

    def num(v: float | None) -> str:
        return "" if v is None else f"{v:g}"

    app.table(
        "tuning journal",
        ["at", "session", "action", "tunable", "from", "to", "objective", "before", "after",
         "note"],
        [
            (e["at"][:19], e["session"], e["action"], e["tunable"], num(e["old"]), num(e["new"]),
             e["objective"], num(e["before"]), num(e["after"]), e["note"])
            for e in events
        ],
    )  # fmt: skip
