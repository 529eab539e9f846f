from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.security_world import World
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


@pytest.fixture(scope="module")
def admin(server: ServerProcess) -> Iterator[httpx.Client]:
    """A client of the module's server with the admin key."""
    with server.client() as client:
        yield client


@pytest.fixture
def world(server: ServerProcess, admin: httpx.Client) -> World:
    """Alice and Bob, their memories and a key each, on the module's server."""
    return World(server, admin)
