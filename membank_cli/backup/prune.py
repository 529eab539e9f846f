"""``membank backup prune``: delete the backups a retention policy does not keep."""

from __future__ import annotations

from pathlib import Path

import typer

from membank_cli.application import Application, ConfigOption
from membank_cli.backup._common import TargetOption
from membank_server.domain.retention import PrunePlan
from membank_server.services.backup import Retention

__all__ = ["prune"]


def prune(
    ctx: typer.Context,
    keep_last: int | None = typer.Option(None, min=0, help="Newest N [backup.keep_last]."),
    keep_daily: int | None = typer.Option(None, min=0, help="N days [backup.keep_daily]."),
    keep_weekly: int | None = typer.Option(None, min=0, help="N ISO weeks [backup.keep_weekly]."),
    keep_monthly: int | None = typer.Option(None, min=0, help="N months [backup.keep_monthly]."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would go; delete nothing."),
    target: str | None = TargetOption,
    config: Path | None = ConfigOption,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Keep the newest backup of each of the last N days, weeks and months and the last N
    backups; delete the rest. Never the newest complete backup, never a backup a kept
    incremental one builds on; a backup without manifest younger than a day may still be
    running and stays."""
    app = Application.of(ctx)
    b = app.settings.backup

    def pick(given: int | None, default: int) -> int:
        return default if given is None else given

    retention = Retention(
        pick(keep_last, b.keep_last),
        pick(keep_daily, b.keep_daily),
        pick(keep_weekly, b.keep_weekly),
        pick(keep_monthly, b.keep_monthly),
    )

    async def work() -> PrunePlan:
        return await (await app.backups()).prune(retention, dry_run=dry_run, target=target)

    plan = app.run(work)
    if as_json:
        app.json(
            {
                "dry_run": dry_run,
                "keep": [{"id": k.id, "why": list(plan.reasons[k.id])} for k in plan.keep],
                "delete": [d.id for d in plan.delete],
            }
        )
        return
    rows = [(k.id, k.status.value, "keep", ", ".join(plan.reasons[k.id])) for k in plan.keep]
    rows += [
        (d.id, d.status.value, "delete" if not dry_run else "would delete", "") for d in plan.delete
    ]
    app.table(
        "prune" + (" (dry run)" if dry_run else ""), ["id", "status", "", "why"], sorted(rows)
    )
    verb = "would delete" if dry_run else "deleted"
    app.success(f"kept {len(plan.keep)}, {verb} {len(plan.delete)}")
