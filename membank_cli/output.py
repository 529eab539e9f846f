"""One way to talk to the operator: Rich on stderr/stdout, one-line errors, exit codes."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from membank_server.domain.errors import ConfigError, MembankError, Unavailable

__all__ = ["console", "fail", "print_json", "success", "table", "warning"]

# Piped output (CI logs, files) gets room for wide tables instead of 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)
# One line per message, never wrapped: logs and scripts read these.
_err = Console(stderr=True, soft_wrap=True)

#: Exit codes: 2 for a bad setting or argument, 3 for a dependency that is down, 1 otherwise.
_EXIT = {ConfigError: 2, Unavailable: 3}


def fail(error: MembankError | str) -> NoReturn:
    """Print one line and exit with the code for this kind of error."""
    if isinstance(error, str):
        _err.print(f"[bold red]error:[/] {error}", highlight=False)
        raise typer.Exit(1)
    code = next((c for cls, c in _EXIT.items() if isinstance(error, cls)), 1)
    _err.print(f"[bold red]error:[/] {error.message}", highlight=False)
    raise typer.Exit(code)


def warning(message: str) -> None:
    _err.print(f"[yellow]warning:[/] {message}", highlight=False)


def success(message: str) -> None:
    _err.print(f"[green]✓[/] {message}", highlight=False)


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    t = Table(title=title)
    for c in columns:
        t.add_column(c)
    for row in rows:
        t.add_row(*(str(v) for v in row))
    console.print(t)


def print_json(data: Mapping[str, Any] | Sequence[Any]) -> None:
    # Plain print: machines read this, so no Rich markup or wrapping.
    print(json.dumps(data, indent=2, default=str))
