"""``membank config show``: the effective settings, secrets masked."""

from __future__ import annotations

from pathlib import Path

import typer

from membank_cli.output import fail, print_json
from membank_server.config import load_settings, masked
from membank_server.domain.errors import MembankError

__all__ = ["app"]

app = typer.Typer(help="Inspect settings.", no_args_is_help=True)


@app.command()
def show(config: Path = typer.Option(None, "--config", "-c", help="TOML settings file.")) -> None:
    """Print the effective settings (defaults < TOML file < MEMBANK_* env), secrets masked."""
    try:
        print_json(masked(load_settings(config)))
    except MembankError as exc:
        fail(exc)
