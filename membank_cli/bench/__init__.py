"""``membank bench search|cache|hotpath|compare|fairness|ingest|index|memory|backup``:
figures measured on this machine.

One module per verb. Each builds a frozen plan from its options (``SearchPlan``,
``CachePlan``, ``ComparePlan``) and runs it against servers it starts on loopback
ports, or a server on this machine; nothing else is ever a target. A new bench
(``backup``, ``fairness``) is a module here with its plan and one line below.
"""

from __future__ import annotations

import typer

from membank_cli.bench.backup import backup
from membank_cli.bench.cache import cache
from membank_cli.bench.compare import compare
from membank_cli.bench.fairness import fairness
from membank_cli.bench.hotpath import hotpath
from membank_cli.bench.index import index
from membank_cli.bench.ingest import ingest
from membank_cli.bench.memory import memory
from membank_cli.bench.search import search

__all__ = ["cli"]

cli = typer.Typer(
    help=(
        "Measure membank here: search, cache, hotpath, compare, fairness, ingest, index, "
        "backup, memory."
    ),
    no_args_is_help=True,
)
cli.command(name="search")(search)
cli.command(name="cache")(cache)
cli.command(name="compare")(compare)
cli.command(name="backup")(backup)
cli.command(name="fairness")(fairness)
cli.command(name="ingest")(ingest)
cli.command(name="hotpath")(hotpath)
cli.command(name="index")(index)
cli.command(name="memory")(memory)
