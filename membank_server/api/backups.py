"""Backups over HTTP: the server runs a backup of the store it owns, and tells its schedule.

``POST /v1/admin/backups`` runs the backup in the server (an embedded store is opened
by one process only, so ``membank backup run`` against a running server comes here)
and answers a stream of JSON lines while it works: ``{"event": "progress", ...}``
about once a second, then one ``{"event": "done", "backup": {...}}`` or ``{"event":
"error", "error": {"code", "message"}}``. A client that goes away cancels the backup,
whose parts are removed: a backup is complete only when its manifest is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import msgspec
from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.response import Stream

from membank_server.api.errors import responses
from membank_server.api.tenancy import admin_only
from membank_server.domain.errors import Conflict, MembankError
from membank_server.services.backup import BackupProgress, BackupReport, BackupService
from membank_server.services.backup_schedule import BackupScheduler

__all__ = ["BackupController", "BackupRun", "ScheduleRead"]

_log = logging.getLogger("membank.backup")
Backups = NamedDependency[BackupService]
Schedule = NamedDependency[BackupScheduler]
#: Seconds between progress lines (and the longest the stream stays silent).
_TICK = 1.0


class BackupRun(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The backup goes to the server's ``backup.target`` only: a target named over HTTP
    would let a request write files anywhere the server may, or reach any endpoint."""

    incremental: bool = False


class ScheduleRead(msgspec.Struct, kw_only=True):
    cron: str | None
    next_run: datetime | None
    runs: int
    failures: int
    skipped: int
    last: dict[str, Any] | None


def _line(event: str, **fields: Any) -> bytes:
    return msgspec.json.encode({"event": event, **fields}) + b"\n"


def _done(r: BackupReport) -> bytes:
    return _line("done", backup=r.summary())


async def _stream(service: BackupService, body: BackupRun) -> AsyncIterator[bytes]:
    latest: list[BackupProgress] = []

    def progress(p: BackupProgress) -> None:
        latest[:] = [BackupProgress(p.phase, p.done, p.total, p.stored_bytes)]

    run = asyncio.ensure_future(service.run(incremental=body.incremental, progress=progress))
    try:
        while not (await asyncio.wait({run}, timeout=_TICK))[0]:
            if latest:
                p = latest[0]
                yield _line(
                    "progress", phase=p.phase, done=p.done, total=p.total,
                    stored_bytes=p.stored_bytes,
                )  # fmt: skip
        try:
            yield _done(run.result())
        except MembankError as exc:
            yield _line("error", error={"code": exc.code, "message": exc.message})
        except Exception:  # noqa: BLE001 - the stream has begun: the client reads it here
            _log.exception("backup failed unexpectedly")
            yield _line("error", error={"code": "internal_error", "message": "backup failed"})
    finally:
        if not run.done():
            run.cancel()
            with contextlib.suppress(asyncio.CancelledError, MembankError):
                await run


class BackupController(Controller):
    """Backups of this server's data; admin keys only."""

    path = "/v1/admin/backups"
    tags = ["backups"]
    guards = [admin_only]

    @post(
        "/",
        status_code=200,
        summary="Run a backup now, streaming its progress as JSON lines",
        operation_id="run_backup",
        media_type="application/x-ndjson",
        responses=responses(404, 409, 422, 503),
        opt={"audit": "backup.run"},
    )
    async def run(self, backups: Backups, data: JSONBody[BackupRun]) -> Stream:
        if backups.busy:
            raise Conflict("a backup is already running on this server")
        return Stream(_stream(backups, data), media_type="application/x-ndjson")

    @get(
        "/schedule",
        summary="The backup schedule and its last round",
        operation_id="backup_schedule",
        responses=responses(404, 422),
    )
    async def schedule(self, backup_schedule: Schedule) -> Response[ScheduleRead]:
        s = backup_schedule.status()
        return Response(
            ScheduleRead(
                cron=s.cron,
                next_run=s.next_run,
                runs=s.runs,
                failures=s.failures,
                skipped=s.skipped,
                last=s.last,
            )
        )
