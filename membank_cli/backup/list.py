"""``membank backup list``: the backups on a target, complete or not."""

from __future__ import annotations

from pathlib import Path

import typer

from membank_cli.application import Application, ConfigOption
from membank_cli.backup._common import TargetOption, size
from membank_server.domain.backup import BackupInfo

__all__ = ["list_backups"]


def list_backups(
    ctx: typer.Context,
    target: str | None = TargetOption,
    config: Path | None = ConfigOption,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List the backups on the target, oldest first: a backup without its manifest (failed,
    killed or still running) is incomplete; one whose manifest cannot be read, corrupt."""
    app = Application.of(ctx)

    async def work() -> list[BackupInfo]:
        return await (await app.backups()).list(target)

    found = app.run(work)
    if as_json:
        app.json(
            [
                {
                    "id": b.id,
                    "created_at": b.created_at.isoformat(),
                    "kind": b.kind,
                    "parent": b.parent,
                    "stored_bytes": b.stored_bytes,
                    "memories": b.memories,
                    "users": b.users,
                    "status": b.status.value,
                }
                for b in found
            ]
        )
        return
    app.table(
        "backups",
        ["id", "time (UTC)", "kind", "parent", "size", "memories", "users", "status"],
        [
            (
                b.id,
                b.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                b.kind or "-",
                b.parent or "-",
                size(b.stored_bytes),
                f"{b.memories:,}" if b.memories is not None else "-",
                f"{b.users:,}" if b.users is not None else "-",
                b.status.value,
            )
            for b in found
        ],
    )
