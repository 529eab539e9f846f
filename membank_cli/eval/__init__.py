"""``membank eval``: quality figures of this build on labelled data. One module per verb."""

from __future__ import annotations

import typer

from membank_cli.eval.retrieval import retrieval

__all__ = ["cli"]

cli = typer.Typer(help="Evaluate membank on labelled data: retrieval.", no_args_is_help=True)
cli.command(name="retrieval")(retrieval)
