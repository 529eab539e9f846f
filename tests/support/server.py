"""Run a real ``membank serve`` process on a free loopback port for tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

__all__ = ["ADMIN_KEY", "AUTH", "ServerProcess", "free_port"]

#: The admin key every test server accepts (``security.admin_key``).
ADMIN_KEY = "test-admin-key-0123456789abcdefghijklmnop"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
#: Rate limits far above what a test sends, unless a test sets its own.
_TEST_DEFAULTS = {
    "MEMBANK_SECURITY__ADMIN_KEY": ADMIN_KEY,
    "MEMBANK_SECURITY__RATE_LIMIT__REQUESTS_PER_SECOND": "1000000",
    "MEMBANK_SECURITY__RATE_LIMIT__BURST": "1000000",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """One server process over a data folder; can be stopped, killed and started again."""

    def __init__(
        self,
        data_dir: Path,
        env: Mapping[str, str] | None = None,
        module: str = "membank_cli",
    ) -> None:
        self.data_dir = data_dir
        #: The module run as the server: ``membank_cli`` (``membank serve``) or a wrapper.
        self.module = module
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir.parent / f"server-{self.port}.log"

    def start_unready(self, timeout: float = 60.0) -> ServerProcess:
        """Start, and return once it answers /health (not necessarily /ready)."""
        return self.start(timeout, until="/health")

    def start(self, timeout: float = 60.0, until: str = "/ready") -> ServerProcess:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("MEMBANK_")},
            "MEMBANK_STORAGE__EDGE__PATH": str(self.data_dir),
            "MEMBANK_SERVER__PORT": str(self.port),
            # Backups a test asks for land beside its data, never in ./backups.
            "MEMBANK_BACKUP__TARGET": str(self.data_dir.parent / "backups"),
            **_TEST_DEFAULTS,
            **self.env,
        }
        with open(self.log, "ab") as log:
            args = ["serve"] if self.module == "membank_cli" else []
            self.proc = subprocess.Popen(
                [sys.executable, "-m", self.module, *args], env=env, stdout=log, stderr=log
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}{until}", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"server not ready in {timeout}s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> int | None:
        """SIGTERM, then wait: the exit status (None if it was not running)."""
        status = None
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            status = self.proc.wait(60)
        self.proc = None
        return status

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush; what was acknowledged must survive."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self.proc = None

    def client(self, key: str | None = ADMIN_KEY) -> httpx.Client:
        """A client sending ``key`` (the admin key by default; None sends none)."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, timeout=60, headers=headers)
