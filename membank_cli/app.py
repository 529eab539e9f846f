"""The ``membank`` command."""

from __future__ import annotations

import typer

from membank_cli import audit, bench, bench_compare, cache, collection, config, keys, storage
from membank_cli.capacity import command as capacity
from membank_cli.loadtest.command import loadtest
from membank_cli.serve import serve

__all__ = ["app", "main"]

app = typer.Typer(
    name="membank",
    help="membank: a memory bank for AI agents.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.command()(serve)
app.command(name="bench")(bench.bench)
app.command(name="loadtest")(loadtest)
# Moves under `membank bench compare` when bench becomes a group of verbs.
app.command(name="bench-compare")(bench_compare.compare)
app.add_typer(collection.app, name="collection")
app.add_typer(config.app, name="config")
app.add_typer(cache.app, name="cache")
app.add_typer(storage.app, name="storage")
app.add_typer(audit.app, name="audit")
app.add_typer(keys.app, name="keys")
app.add_typer(capacity.app, name="capacity")


def main() -> None:
    app()
