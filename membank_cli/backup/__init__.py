"""``membank backup run|list|verify|restore|prune|schedule``: backups to S3 or a folder.

One module per verb. ``run`` goes through a running server that owns the embedded
store's folder; the others read the target directly (``restore`` opens the store
itself: stop an embedded server first).
"""

from __future__ import annotations

import typer

from membank_cli.backup.list import list_backups
from membank_cli.backup.prune import prune
from membank_cli.backup.restore import restore
from membank_cli.backup.run import run
from membank_cli.backup.schedule import schedule
from membank_cli.backup.verify import verify

__all__ = ["cli"]

cli = typer.Typer(
    help="Back up memories, keys and the audit log to S3 or a folder; verify, restore, prune.",
    no_args_is_help=True,
)
cli.command(name="run")(run)
cli.command(name="list")(list_backups)
cli.command(name="verify")(verify)
cli.command(name="restore")(restore)
cli.command(name="prune")(prune)
cli.command(name="schedule")(schedule)
