"""The ``membank`` command: the root callback, its groups and commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from membank_cli import audit, bench, cache, collection, config, jobs, keys, storage
from membank_cli.application import Application, ConfigOption
from membank_cli.capacity import command as capacity
from membank_cli.loadtest.command import loadtest
from membank_cli.serve import serve

__all__ = ["app", "main"]


class _Root(TyperGroup):
    """Whatever escapes a command ends as :meth:`Application.abort` says: one line and an
    exit code for a ``MembankError``, a traceback without locals for the unexpected."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (TyperException, typer.Exit, typer.Abort):
            raise
        except Exception as exc:  # noqa: BLE001 - abort reports it and exits non-zero
            Application.of(ctx).abort(exc)


app = typer.Typer(
    name="membank",
    help="membank: a memory bank for AI agents.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    cls=_Root,
)


@app.callback()
def _root(ctx: typer.Context, config: Path | None = ConfigOption) -> None:
    Application.of(ctx)


app.command()(serve)
app.command(name="loadtest")(loadtest)
app.add_typer(bench.cli, name="bench")
app.add_typer(collection.cli, name="collection")
app.add_typer(config.cli, name="config")
app.add_typer(cache.cli, name="cache")
app.add_typer(storage.cli, name="storage")
app.add_typer(audit.cli, name="audit")
app.add_typer(keys.cli, name="keys")
app.add_typer(jobs.cli, name="jobs")
app.add_typer(capacity.cli, name="capacity")


def main() -> None:
    app()
