"""``membank backup schedule``: the running server's backup schedule and its last round."""

from __future__ import annotations

from typing import Any

import typer

from membank_cli._server import KeyOption, UrlOption, checked, reaching, server_client
from membank_cli.application import Application

__all__ = ["schedule"]


def schedule(
    ctx: typer.Context,
    url: str = UrlOption,
    key: str | None = KeyOption,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Show the server's backup schedule (backup.schedule), its next round, and how the
    last one went. A Kubernetes CronJob can run `membank backup run` instead."""
    app = Application.of(ctx)
    with reaching(url), server_client(url, key) as http:
        status: dict[str, Any] = checked(http.get("/v1/admin/backups/schedule"))
    if as_json:
        app.json(status)
        return
    last = status.get("last") or {}
    rows = [
        ("cron", status["cron"] or "(none: set backup.schedule)"),
        ("next run", status["next_run"] or "-"),
        ("runs", status["runs"]),
        ("failures", status["failures"]),
        ("skipped (another instance held the lock)", status["skipped"]),
        *((f"last {k}", v) for k, v in last.items()),
    ]
    app.table("backup schedule", ["", "value"], rows)
