"""``membank serve``: run the HTTP server."""

from __future__ import annotations

import os
from pathlib import Path

import typer
import uvicorn

from membank_cli.output import fail
from membank_server.config import load_settings
from membank_server.domain.errors import ConfigError

__all__ = ["serve"]


def serve(
    host: str = typer.Option(None, help="Address to bind [default: server.host, 127.0.0.1]."),
    port: int = typer.Option(None, help="Port [default: server.port, 8080]."),
    workers: int = typer.Option(None, help="Worker processes (1 with the embedded store)."),
    config: Path = typer.Option(None, "--config", "-c", help="TOML settings file."),
    data_dir: Path = typer.Option(
        None, "--data-dir", help="Folder of the embedded store [default: ./data]."
    ),
) -> None:
    """Run the memory server (embedded Qdrant Edge under ./data unless configured)."""
    # Options become MEMBANK_* variables so every worker process reads the same settings.
    overrides = {
        "MEMBANK_CONFIG": config,
        "MEMBANK_SERVER__HOST": host,
        "MEMBANK_SERVER__PORT": port,
        "MEMBANK_SERVER__WORKERS": workers,
        "MEMBANK_STORAGE__EDGE__PATH": data_dir,
    }
    given = {name: str(value) for name, value in overrides.items() if value is not None}
    try:
        settings = load_settings(environ={**os.environ, **given})
    except ConfigError as exc:
        fail(exc)
    os.environ.update(given)
    s = settings.server
    uvicorn.run(
        "membank_server.asgi:create_app",
        factory=True,
        host=s.host,
        port=s.port,
        workers=s.workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
        log_level=s.log_level,
        timeout_graceful_shutdown=10,
        # The client address is ours to work out (trusted proxies only), not uvicorn's.
        proxy_headers=False,
        server_header=False,
    )
