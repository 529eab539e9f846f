"""``membank backup restore``: a backup (and the chain it builds on) back into a store."""

from __future__ import annotations

from pathlib import Path

import typer

from membank_cli.application import Application, ConfigOption
from membank_cli.backup._common import TargetOption, progress_bars
from membank_server.domain.model import USER_ID_PATTERN
from membank_server.services.backup import RestorePlan, RestoreReport

__all__ = ["restore"]


def restore(
    ctx: typer.Context,
    backup_id: str = typer.Argument(..., metavar="ID", help="The backup (see: backup list)."),
    into: str | None = typer.Option(
        None,
        "--into",
        help="edge, qdrant or pgvector: restore into that store (its storage.* settings) "
        "rather than the configured one; any backup restores into any of them.",
    ),
    user: str | None = typer.Option(None, "--user", help="Restore only this user's data."),
    force: bool = typer.Option(
        False,
        "--force",
        help="Restore into a store that is not empty: the backup's records replace those "
        "with their ids, the others stay. Also allows another embedder.",
    ),
    target: str | None = TargetOption,
    config: Path | None = ConfigOption,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Restore every memory of a backup with its id, version, timestamps and history, and
    its keys, teams, audit entries and popular-query counts. Every part is checked first:
    a damaged backup, a wrong key or a store that is not empty writes nothing. Stop an
    embedded server first (it owns its data folder)."""
    app = Application.of(ctx)
    if user is not None and not USER_ID_PATTERN.match(user):
        app.abort(f"--user {user!r} is not a user id (1-128 of A-Z a-z 0-9 _ . : @ -)")

    async def work() -> RestoreReport:
        store = await app.store_of(into)
        service = await app.backups(store, extras="write")
        with progress_bars(app.console, show=not as_json) as tick:
            return await service.restore(
                backup_id,
                into=store,
                plan=RestorePlan(user=user, force=force),
                target=target,
                progress=lambda phase, done, total: tick(phase, done, total, 0),
            )

    report = app.run(work)
    x = report.extras
    if as_json:
        app.json(
            {
                "backup": report.backup_id,
                "chain": list(report.chain),
                "records": report.records,
                "erased": report.erased,
                "keys": x.keys,
                "keys_kept": x.keys_kept,
                "memberships": x.memberships,
                "audit_entries": x.audit,
                "popular_queries": x.counts,
                "seconds": round(report.seconds, 3),
                "warnings": x.warnings,
            }
        )
    else:
        rate = report.records / report.seconds if report.seconds else 0.0
        app.table(
            f"restored {report.backup_id}" + (f" (user {user})" if user else ""),
            ["", "value"],
            [
                ("chain", " → ".join(report.chain)),
                ("memory records", f"{report.records:,}"),
                ("erased by later backups", f"{report.erased:,}"),
                ("keys", f"{x.keys} added, {x.keys_kept} already there"),
                ("team memberships", x.memberships),
                ("audit entries added", x.audit),
                ("popular queries", x.counts),
                ("time", f"{report.seconds:.1f} s ({rate:,.0f} records/s)"),
            ],
        )
        for warning in x.warnings:
            app.warning(warning)
    app.success(f"backup {report.backup_id} restored")
