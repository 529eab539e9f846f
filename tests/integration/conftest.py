from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A real server on the embedded store, shared by one test module."""
    root: Path = tmp_path_factory.mktemp("server")
    proc = ServerProcess(root / "data", env={"MEMBANK_SERVER__PURGE_INTERVAL_SECONDS": "0.5"})
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client
