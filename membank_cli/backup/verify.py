"""``membank backup verify``: read a backup whole and check it; ``--deep`` restores it."""

from __future__ import annotations

from pathlib import Path

import typer

from membank_cli.application import Application, ConfigOption
from membank_cli.backup._common import TargetOption, progress_bars, size
from membank_server.services.backup import VerifyReport

__all__ = ["verify"]


def verify(
    ctx: typer.Context,
    backup_id: str = typer.Argument(..., metavar="ID", help="The backup (see: backup list)."),
    deep: bool = typer.Option(
        False, "--deep", help="Also restore it into a scratch store and compare what comes back."
    ),
    sample: int = typer.Option(100, min=1, max=100_000, help="Records compared one by one."),
    target: str | None = TargetOption,
    config: Path | None = ConfigOption,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Download and check every part of a backup and of the backups it builds on: sizes,
    SHA-256, decryption, zstd, every record. Exits 1 naming the first part that fails."""
    app = Application.of(ctx)

    async def work() -> VerifyReport:
        service = await app.backups()
        with progress_bars(app.console, show=not as_json) as tick:
            return await service.verify(
                backup_id,
                deep=deep,
                sample=sample,
                target=target,
                progress=lambda phase, done, total: tick(phase, done, total, 0),
            )

    report = app.run(work)
    if as_json:
        app.json(
            {
                "backup": report.backup_id,
                "chain": list(report.chain),
                "parts": report.parts,
                "records": report.records,
                "stored_bytes": report.stored_bytes,
                "deep": deep,
                "compared": report.compared,
                "sampled": report.sampled,
                "problems": report.problems,
                "ok": report.ok,
            }
        )
    else:
        app.table(
            f"backup {report.backup_id}",
            ["", "value"],
            [
                ("chain", " → ".join(report.chain)),
                ("parts checked", report.parts),
                ("records read", f"{report.records:,}"),
                ("stored", size(report.stored_bytes)),
                *(
                    [("restored and compared", f"{report.compared:,}"), ("sampled", report.sampled)]
                    if deep
                    else []
                ),
            ],
        )
        for problem in report.problems[:50]:
            app.warning(problem)
    if not report.ok:
        app.abort(f"backup {report.backup_id} does not restore as written")
    app.success(f"backup {report.backup_id} is sound" + (" and restores" if deep else ""))
