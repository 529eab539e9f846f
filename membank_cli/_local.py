"""A ``membank serve`` process this command starts on a free loopback port, and its RSS.

Shared by the commands that measure a server they own (``membank bench``,
``membank capacity calibrate``): same start, same readiness wait, same stop.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

from membank_cli.output import fail

__all__ = ["free_port", "local_server", "rss_bytes"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def local_server(data_dir: Path, extra: Mapping[str, str]) -> Iterator[tuple[str, int]]:
    """Serve ``data_dir`` with ``extra`` settings; yield ``(url, pid)`` once ready."""
    port = free_port()
    env = {
        **os.environ,
        "MEMBANK_STORAGE__EDGE__PATH": str(data_dir / "edge"),
        "MEMBANK_SERVER__PORT": str(port),
        "MEMBANK_SERVER__LOG_LEVEL": "warning",
        **extra,
    }
    proc = subprocess.Popen([sys.executable, "-m", "membank_cli", "serve"], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                fail(f"the server exited with code {proc.returncode} before it was ready")
            try:
                if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        else:
            fail("the server was not ready within 60 s")
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(30)


def rss_bytes(pid: int) -> int | None:
    """Resident set size of a live process (``VmRSS`` in ``/proc/<pid>/status``)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except FileNotFoundError:
        return None
    for line in lines:
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return None
