"""A ``membank serve`` process of our own on a free loopback port, and its RSS.

Shared by the commands that measure a server they own (``membank bench``,
``membank loadtest``, ``membank capacity calibrate``): same start, same
readiness wait, same stop.

Fresh data folder, an admin key of the caller's choosing, warnings-only logs;
stopped (SIGTERM, then waited for) when the ``with`` block ends.
"""

from __future__ import annotations

import functools
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from membank_server.domain.errors import MembankError

__all__ = [
    "LocalServer",
    "bench_auth",
    "bench_security",
    "free_port",
    "local_server",
    "rss_bytes",
    "rss_mib",
]


#: Servers started to be measured run with security on, as in production: requests
#: carry an admin key and pass the lockout check and the per-key rate limiter (set far
#: above what a bench sends, so its cost is measured but it never refuses).
@functools.cache
def _bench_key() -> str:
    return "membank-bench-" + secrets.token_urlsafe(24)


def bench_security() -> dict[str, str]:
    """Settings of a measured server: this process's admin key, limits out of the way."""
    return {
        "MEMBANK_SECURITY__ADMIN_KEY": _bench_key(),
        "MEMBANK_SECURITY__RATE_LIMIT__REQUESTS_PER_SECOND": "10000000",
        "MEMBANK_SECURITY__RATE_LIMIT__BURST": "10000000",
    }


def bench_auth() -> dict[str, str]:
    """The header that authenticates with :func:`bench_security`'s admin key."""
    return {"Authorization": f"Bearer {_bench_key()}"}


@dataclass(frozen=True)
class LocalServer:
    url: str
    pid: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def local_server(
    data_dir: Path, env: Mapping[str, str], *, quiet: bool = False, timeout: float = 60
) -> Iterator[LocalServer]:
    """Serve ``data_dir`` with ``env`` over the inherited environment until the block ends."""
    port = free_port()
    full_env = {
        **os.environ,
        "MEMBANK_STORAGE__EDGE__PATH": str(data_dir / "edge"),
        "MEMBANK_SERVER__PORT": str(port),
        "MEMBANK_SERVER__LOG_LEVEL": "warning",
        **env,
    }
    sink = subprocess.DEVNULL if quiet else None
    proc = subprocess.Popen(
        [sys.executable, "-m", "membank_cli", "serve"], env=full_env, stdout=sink, stderr=sink
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise MembankError(
                    f"the server exited with code {proc.returncode} before it was ready"
                )
            try:
                if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        else:
            raise MembankError(f"the server was not ready within {timeout:.0f} s")
        yield LocalServer(url, proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        children = (task / "children").read_text().split() if (task / "children").exists() else []
        found.extend(int(c) for c in children)
    return found


def rss_bytes(pid: int) -> int | None:
    """Resident memory of a process and its children (uvicorn workers), or None if gone."""
    total = 0
    todo = [pid]
    try:
        while todo:
            current = todo.pop()
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
            todo.extend(_children(current))
    except (FileNotFoundError, ProcessLookupError):
        return None if total == 0 else total
    return total


def rss_mib(pid: int | None) -> float | None:
    """:func:`rss_bytes` in MiB; None for no process."""
    rss = rss_bytes(pid) if pid is not None else None
    return rss / 2**20 if rss is not None else None
