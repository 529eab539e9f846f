"""``membank audit tail|export``: read the append-only audit log directly.

Both open the configured sink themselves (``security.audit``): the file
``<security dir>/audit.log`` or the PostgreSQL table, read while a server
appends. They only read: nothing is created, changed or removed.
"""

from __future__ import annotations

import asyncio
import csv
import os
import sys
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

import msgspec
import typer
from rich.markup import escape

from membank_cli.application import Application, ConfigOption
from membank_cli.output import Output
from membank_server.domain.errors import ConfigError
from membank_server.domain.ports import AuditLog
from membank_server.domain.security import AuditEntry

__all__ = ["cli"]

cli = typer.Typer(help="Read the append-only audit log.", no_args_is_help=True)
_COLUMNS = ("at", "request_id", "actor", "client", "action", "target", "result", "status")
#: Seconds between two looks at the log under --follow.
_POLL = 0.5
#: How far back --follow looks again, for entries that land out of time order
#: (several instances appending, each with its own clock and queue).
_LATE = timedelta(seconds=30)
#: Cells a spreadsheet would run as a formula (CSV injection).
_FORMULA = ("=", "+", "-", "@", "\t", "\r")
_encoder = msgspec.json.Encoder()


def _time(value: str | None, option: str) -> datetime | None:
    """An ISO-8601 time from an option; without an offset it is UTC."""
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ConfigError(
            f"{option} {value!r} is not an ISO-8601 time, e.g. 2025-01-31T09:30:00Z"
        ) from exc
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def _json_line(entry: AuditEntry) -> str:
    line = {
        **{c: getattr(entry, c) for c in _COLUMNS},
        "at": entry.at.astimezone(UTC),
        "details": dict(entry.details),
    }
    return _encoder.encode(line).decode()


def _show(
    out: Output, entries: Iterable[AuditEntry], as_json: bool, title: str = "audit log"
) -> None:
    if as_json:
        for entry in entries:
            print(_json_line(entry), flush=True)
        return
    rows = [
        # The fields come from requests: no Rich markup of theirs may render.
        [escape(v) for v in (_when(e.at), e.actor, e.client, e.action, e.target, e.result)]
        + [str(e.status), escape(e.request_id)]
        for e in entries
    ]
    out.table(
        title,
        ["time (UTC)", "actor", "client", "action", "target", "result", "status", "request id"],
        rows,
    )


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


async def _follow(out: Output, log: AuditLog, shown: list[AuditEntry], as_json: bool) -> None:
    """Print entries as they arrive until interrupted."""
    newest = max((e.at for e in shown), default=datetime.now(UTC))
    # What tail left out (older than the last --lines) is not news either.
    seen = {_json_line(e): e.at for e in await log.read(since=newest - _LATE) if e.at <= newest}
    seen.update((_json_line(e), e.at) for e in shown)
    while True:
        await asyncio.sleep(_POLL)
        fresh = [e for e in await log.read(since=newest - _LATE) if _json_line(e) not in seen]
        if not fresh:
            continue
        _show(out, fresh, as_json, title="")
        seen.update((_json_line(e), e.at) for e in fresh)
        newest = max(newest, *(e.at for e in fresh))
        # Forget what the next read no longer returns, so the set stays small.
        seen = {k: at for k, at in seen.items() if at >= newest - _LATE}


@cli.command()
def tail(
    ctx: typer.Context,
    lines: int = typer.Option(20, "--lines", "-n", min=1, help="How many entries to show."),
    follow: bool = typer.Option(
        False, "--follow", "-f", help="Keep printing new entries until Ctrl-C."
    ),
    as_json: bool = typer.Option(False, "--json", help="JSON lines instead of a table."),
    config: Path | None = ConfigOption,
) -> None:
    """Show the last entries of the audit log (time in UTC)."""
    app = Application.of(ctx)

    async def work() -> None:
        log = await app.audit_log()
        last = await log.read(limit=lines)
        _show(app, last, as_json)
        if follow:
            await _follow(app, log, last, as_json)

    try:
        app.run(work)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


@cli.command()
def export(
    ctx: typer.Context,
    since: str | None = typer.Option(
        None, "--since", help="From this time on (ISO-8601; UTC without an offset)."
    ),
    until: str | None = typer.Option(None, "--until", help="Before this time (ISO-8601)."),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl, or csv (details as JSON)."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="File to write (made 0600); stdout without it."
    ),
    config: Path | None = ConfigOption,
) -> None:
    """Write the entries of a time range, oldest first, as JSON lines or CSV.

    CSV cells starting with = + - @ get a leading ' so a spreadsheet shows them
    instead of running them; use jsonl for the exact values.
    """
    app = Application.of(ctx)
    start, end = _time(since, "--since"), _time(until, "--until")
    if fmt not in ("jsonl", "csv"):
        app.abort(ConfigError(f"--format {fmt!r}: choose jsonl or csv"))
    if start is not None and end is not None and start >= end:
        app.abort(ConfigError("--since must be before --until"))

    async def work() -> list[AuditEntry]:
        log = await app.audit_log()
        return await log.read(since=start, until=end)

    entries = app.run(work)
    if output is None:
        _write(sys.stdout, entries, fmt)
    else:
        try:
            fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with open(fd, "w", encoding="utf-8", newline="") as out:
                _write(out, entries, fmt)
        except OSError as exc:
            app.abort(f"cannot write {output}: {exc}")
    app.success(f"exported {len(entries)} audit entries to {output or 'stdout'}")


def _write(out: IO[str], entries: list[AuditEntry], fmt: str) -> None:
    if fmt == "jsonl":
        for entry in entries:
            out.write(_json_line(entry) + "\n")
        return
    writer = csv.writer(out)
    writer.writerow([*_COLUMNS, "details"])
    for e in entries:
        at = e.at.astimezone(UTC).isoformat().replace("+00:00", "Z")
        cells = [e.request_id, e.actor, e.client, e.action, e.target, e.result]
        details = _encoder.encode(dict(e.details)).decode()
        writer.writerow([at, *(_cell(c) for c in cells), e.status, _cell(details)])


def _cell(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA) else value
