"""One way to talk to the operator: Rich on stdout and stderr, one-line errors, exit codes."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.status import Status
from rich.table import Table
from rich.traceback import Traceback

from membank_server.domain.errors import ConfigError, MembankError, Unavailable

__all__ = ["Output"]

#: Exit codes: 2 for a bad setting or argument, 3 for a dependency that is down, 1 otherwise.
_EXIT = {ConfigError: 2, Unavailable: 3}


class Output:
    """Tables, JSON and progress on stdout; messages, warnings and errors on stderr."""

    def __init__(self) -> None:
        # Piped output (CI logs, files) gets room for wide tables instead of 80 columns.
        self.console = Console(width=None if sys.stdout.isatty() else 160)
        # One line per message, never wrapped: logs and scripts read these.
        self._err = Console(stderr=True, soft_wrap=True)

    def abort(self, error: BaseException | str) -> NoReturn:
        """Stop the command: one line and the exit code for this kind of error.

        A string or a :class:`MembankError` is one line (exit 2 for a bad setting, 3 for
        a dependency that is down, 1 otherwise); anything else was not expected, so it
        gets its traceback, without local variables (they may hold keys or memories).
        """
        if isinstance(error, str):
            self._err.print(f"[bold red]error:[/] {error}", highlight=False)
            raise typer.Exit(1)
        if isinstance(error, MembankError):
            code = next((c for cls, c in _EXIT.items() if isinstance(error, cls)), 1)
            self._err.print(f"[bold red]error:[/] {error.message}", highlight=False)
            raise typer.Exit(code)
        self._err.print(
            Traceback.from_exception(
                type(error), error, error.__traceback__, show_locals=False, suppress=[typer]
            )
        )
        raise typer.Exit(1)

    def warning(self, message: str) -> None:
        self._err.print(f"[yellow]warning:[/] {message}", highlight=False)

    def success(self, message: str) -> None:
        self._err.print(f"[green]✓[/] {message}", highlight=False)

    def status(self, message: str) -> Status:
        """A spinner with ``message`` while a ``with`` block runs."""
        return self.console.status(message)

    def table(self, title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        t = Table(title=title)
        for c in columns:
            t.add_column(c)
        for row in rows:
            t.add_row(*(str(v) for v in row))
        self.console.print(t)

    def json(self, data: Mapping[str, Any] | Sequence[Any]) -> None:
        # Plain print: machines read this, so no Rich markup or wrapping.
        print(json.dumps(data, indent=2, default=str))
