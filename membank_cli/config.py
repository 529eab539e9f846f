"""``membank config show``: the effective settings, secrets masked."""

from __future__ import annotations

from pathlib import Path

import typer

from membank_cli.application import Application, ConfigOption
from membank_server.config import masked

__all__ = ["cli"]

cli = typer.Typer(help="Inspect settings.", no_args_is_help=True)


@cli.command()
def show(ctx: typer.Context, config: Path | None = ConfigOption) -> None:
    """Print the effective settings (defaults < TOML file < MEMBANK_* env), secrets masked."""
    app = Application.of(ctx)
    app.json(masked(app.settings))
