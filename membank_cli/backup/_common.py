"""What the backup verbs share: the target option, progress bars, sizes, error codes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from membank_server.domain import errors

__all__ = ["TargetOption", "Tick", "error_of", "progress_bars", "size"]

TargetOption: Any = typer.Option(
    None,
    "--target",
    "-t",
    help="s3://bucket/prefix, file:///path or a folder [default: backup.target, ./backups].",
)
#: (phase, done, total or None, stored bytes): one progress update.
Tick = Callable[[str, int, int | None, int], None]
#: Phases counted in bytes, not records.
_BYTES = {"verify", "pg_dump"}
#: Phases too short for a bar of their own: named on the bar before.
_STEPS = {"index", "keys, audit", "commit", "compare"}


def size(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} TiB"


class _Rate(ProgressColumn):
    """Records (or bytes) per second, and the stored bytes a second when known."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if not speed:
            return Text("")
        if task.fields.get("bytes"):
            return Text(f"{size(speed)}/s", style="progress.data.speed")
        text = f"{speed:,.0f} rec/s"
        stored, elapsed = task.fields.get("stored", 0), task.elapsed or 0
        if stored and elapsed:
            text += f"  {size(stored)} at {size(stored / elapsed)}/s"
        return Text(text, style="progress.data.speed")


class _Count(ProgressColumn):
    def render(self, task: Task) -> Text:
        if task.fields.get("bytes"):
            total = f"/{size(task.total)}" if task.total else ""
            return Text(f"{size(task.completed)}{total}")
        total = f"/{task.total:,.0f}" if task.total else ""
        return Text(f"{task.completed:,.0f}{total}")


@contextmanager
def progress_bars(console: Console, *, show: bool = True) -> Iterator[Tick]:
    """One bar per phase, with its rate and ETA; updates as ``tick(phase, done, total, stored)``.
    ``show=False`` (``--json``): no bars, so stdout holds the JSON document alone."""
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description:<22}"),
        BarColumn(),
        _Count(),
        _Rate(),
        TimeRemainingColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not show,
    ) as bars:
        tasks: dict[str, TaskID] = {}
        last: list[str] = []

        def tick(phase: str, done: int, total: int | None, stored: int = 0) -> None:
            if phase in _STEPS:
                if last:
                    bars.update(tasks[last[0]], description=f"{last[0]} · {phase}")
                return
            if phase not in tasks:
                if last:  # the phase before is over
                    bars.update(tasks[last[0]], total=bars.tasks[tasks[last[0]]].completed)
                tasks[phase] = bars.add_task(phase, total=total, bytes=phase in _BYTES)
                last[:] = [phase]
            bars.update(tasks[phase], completed=done, total=total, stored=stored)

        yield tick


def error_of(code: str, message: str) -> errors.MembankError:
    """The error a server named by its code, so the exit code matches a local run."""
    for name in errors.__all__:
        cls = getattr(errors, name)
        if isinstance(cls, type) and issubclass(cls, errors.MembankError) and cls.code == code:
            return cls(message)
    return errors.MembankError(message)
