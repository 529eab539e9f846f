"""``membank serve``: run the HTTP server."""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

import typer
import uvicorn

from membank_cli.application import Application, ConfigOption
from membank_server.lifecycle import shutdown_report
from membank_server.protocol import BoundedHttpToolsProtocol

__all__ = ["serve"]

#: uvicorn's exit status when the app did not start (a bad folder, a store down).
_STARTUP_FAILED = 3
_APP = "membank_server.asgi:create_app"


def serve(
    ctx: typer.Context,
    host: str = typer.Option(None, help="Address to bind [default: server.host, 127.0.0.1]."),
    port: int = typer.Option(None, help="Port [default: server.port, 8080]."),
    workers: int = typer.Option(None, help="Worker processes (1 with the embedded store)."),
    config: Path | None = ConfigOption,
    data_dir: Path = typer.Option(
        None, "--data-dir", help="Folder of the embedded store [default: ./data]."
    ),
) -> None:
    """Run the memory server (embedded Qdrant Edge under ./data unless configured)."""
    app = Application.of(ctx)
    # Options become MEMBANK_* variables so every worker process reads the same settings.
    overrides = {
        "MEMBANK_CONFIG": app.config_file,
        "MEMBANK_SERVER__HOST": host,
        "MEMBANK_SERVER__PORT": port,
        "MEMBANK_SERVER__WORKERS": workers,
        "MEMBANK_STORAGE__EDGE__PATH": data_dir,
    }
    given = {name: str(value) for name, value in overrides.items() if value is not None}
    app.override(given)
    s = app.settings.server
    os.environ.update(given)
    # One process per data folder, decided before anything opens in it: a second
    # server stops here with one line, having touched nothing.
    app.lock_data_folder()
    options: dict[str, Any] = {
        "factory": True,
        "host": s.host,
        "port": s.port,
        "workers": s.workers,
        "loop": "uvloop",
        # httptools, with the request head bounded before the app sees it.
        "http": BoundedHttpToolsProtocol,
        "access_log": False,
        "log_config": None,
        "log_level": s.log_level,
        "timeout_graceful_shutdown": math.ceil(s.shutdown_timeout),
        # The client address is ours to work out (trusted proxies only), not uvicorn's.
        "proxy_headers": False,
        "server_header": False,
    }
    if s.workers > 1:
        _run_workers(options, s.metrics_address)
        return
    server = _Server(uvicorn.Config(_APP, **options))
    server.run()
    if not server.started:
        raise typer.Exit(_STARTUP_FAILED)
    if not shutdown_report.clean:
        # A shutdown that cut requests off or failed to close a store is not clean.
        raise typer.Exit(1)


def _run_workers(options: dict[str, Any], metrics_address: str | None) -> None:
    """uvicorn's supervisor and its workers, with metrics in prometheus-client's
    multiprocess mode: one fresh folder every worker writes its metrics to, added up by
    whoever answers /metrics (a worker, or the supervisor's listener)."""
    folder = tempfile.mkdtemp(prefix="membank-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    from membank_server.observability.metrics import start_metrics_listener

    close = start_metrics_listener(metrics_address) if metrics_address else None
    try:
        # The supervisor starts and stops the workers; each worker's exit is its own.
        uvicorn.run(_APP, **options)
    finally:
        if close is not None:
            close()
        shutil.rmtree(folder, ignore_errors=True)


class _Server(uvicorn.Server):
    """uvicorn's server, without re-raising the stop signal once it has shut down
    gracefully: the process then exits with a status that says how the shutdown went
    (0 clean, 1 cut requests off or failed), not as killed by SIGTERM."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()
