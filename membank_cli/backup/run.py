"""``membank backup run``: write a backup now, here or in the running server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import msgspec
import typer

from membank_cli._server import KeyOption, auth_headers, reaching
from membank_cli.application import Application, ConfigOption
from membank_cli.backup._common import TargetOption, Tick, error_of, progress_bars, size
from membank_server.domain.errors import MembankError
from membank_server.services.backup import BackupProgress, BackupReport

__all__ = ["run"]


def _local(app: Application, incremental: bool, target: str | None, tick: Tick) -> dict[str, Any]:
    async def work() -> BackupReport:
        service = await app.backups(await app.store(), extras="read")

        def progress(p: BackupProgress) -> None:
            tick(p.phase, p.done, p.total, p.stored_bytes)

        return await service.run(incremental=incremental, target=target, progress=progress)

    return app.run(work).summary()


def _remote(url: str, key: str | None, incremental: bool, tick: Tick) -> dict[str, Any]:
    """Run it in the server, reading its stream of progress lines (``api/backups.py``)."""
    body = {"incremental": incremental}
    timeout = httpx.Timeout(30.0, read=600.0)
    with (
        reaching(url),
        httpx.Client(base_url=url, timeout=timeout, headers=auth_headers(key)) as http,
        http.stream("POST", "/v1/admin/backups", json=body) as answer,
    ):
        if answer.status_code >= 400:
            answer.read()
            try:
                error = answer.json()["error"]
            except (ValueError, KeyError, TypeError):
                error = {"code": "error", "message": answer.text[:200]}
            raise error_of(error.get("code", "error"), f"the server refused: {error['message']}")
        for line in answer.iter_lines():
            if not line.strip():
                continue
            event = msgspec.json.decode(line)
            if event["event"] == "progress":
                tick(event["phase"], event["done"], event["total"], event["stored_bytes"])
            elif event["event"] == "done":
                done: dict[str, Any] = event["backup"]
                return done
            elif event["event"] == "error":
                raise error_of(event["error"]["code"], event["error"]["message"])
    raise MembankError(f"the server at {url} ended the backup's stream without an outcome")


def run(
    ctx: typer.Context,
    incremental: bool = typer.Option(
        False, "--incremental", help="Only what changed since the newest backup on the target."
    ),
    target: str | None = TargetOption,
    url: str | None = typer.Option(
        None,
        "--url",
        help="Run it in this server. By default a server that owns the data folder is "
        "asked (at server.host:server.port); otherwise the store is opened here.",
    ),
    key: str | None = KeyOption,
    config: Path | None = ConfigOption,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Back up every memory (with history), the API keys and teams, the audit log and
    the popular-query counts; with PostgreSQL, a pg_dump too. The manifest is written
    last: a backup that fails or is killed is never listed complete."""
    app = Application.of(ctx)
    if url is None and app.data_folder_in_use():
        server = app.settings.server
        url = f"http://{server.host}:{server.port}"
        app.warning(f"the data folder is in use: the server at {url} runs the backup")
    if url is not None and target is not None:
        app.abort(
            "a server backs up to its own backup.target: set it in the server's settings "
            "rather than --target (or stop the server and run the backup here)"
        )
    with progress_bars(app.console, show=not as_json) as tick:
        if url is not None:
            try:
                done = _remote(url, key, incremental, tick)
            except MembankError as exc:
                app.abort(exc)
        else:
            done = _local(app, incremental, target, tick)
    if as_json:
        app.json(done)
        return
    ratio = done["raw_bytes"] / done["stored_bytes"] if done["stored_bytes"] else 0.0
    rate = done["records"] / done["seconds"] if done["seconds"] else 0.0
    app.table(
        f"backup {done['id']}",
        ["", "value"],
        [
            ("kind", done["kind"] + (f" (parent {done['parent']})" if done["parent"] else "")),
            ("memory records", f"{done['records']:,}"),
            ("users", f"{done['users']:,}"),
            ("parts", done["parts"]),
            ("stored", f"{size(done['stored_bytes'])} ({ratio:.2f}x compressed)"),
            ("time", f"{done['seconds']:.1f} s ({rate:,.0f} records/s)"),
        ],
    )
    for warning in done.get("warnings", []):
        app.warning(warning)
    app.success(f"backup {done['id']} is complete")
