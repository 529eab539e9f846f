"""A load test targets this machine only, unless the operator allows more.

The refusal happens before anything is resolved or sent: the CLI test makes any
name resolution, connection or subprocess fail the test, and uses a name under
``.invalid``, which never resolves anyway.
"""

from __future__ import annotations

import socket
import subprocess
from typing import Any

import pytest
from typer.testing import CliRunner

from membank_cli.app import app
from membank_cli.loadtest.hosts import checked_host, is_loopback
from membank_server.domain.errors import ConfigError


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.8.9.10", "::1", "localhost", "LOCALHOST", "localhost."]
)
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize(
    "host",
    [
        "example.invalid",
        "10.0.0.1",
        "192.168.1.10",
        "8.8.8.8",
        "0.0.0.0",
        "::",
        "localhost.example.com",
        "127.0.0.1.nip.io",
        "::ffff:10.0.0.1",
    ],
)
def test_everything_else_is_remote(host: str) -> None:
    assert not is_loopback(host)


def test_checked_host_keeps_loopback_urls_and_refuses_others() -> None:
    assert checked_host("http://127.0.0.1:8080/", allow_remote=False) == "http://127.0.0.1:8080"
    assert checked_host("http://[::1]:8080", allow_remote=False) == "http://[::1]:8080"
    with pytest.raises(ConfigError, match=r"refusing to load example\.invalid"):
        checked_host("http://example.invalid:8080", allow_remote=False)
    assert checked_host("https://example.invalid", allow_remote=True) == "https://example.invalid"
    with pytest.raises(ConfigError, match="http:// or https://"):
        checked_host("ftp://127.0.0.1", allow_remote=True)
    with pytest.raises(ConfigError, match="http:// or https://"):
        checked_host("127.0.0.1:8080", allow_remote=False)


def test_cli_refuses_a_remote_host_before_any_request(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"nothing may be resolved, sent or started: {args!r}")

    monkeypatch.setattr(socket, "getaddrinfo", forbidden)
    monkeypatch.setattr(socket, "create_connection", forbidden)
    monkeypatch.setattr(socket.socket, "connect", forbidden)
    monkeypatch.setattr(subprocess, "Popen", forbidden)
    result = CliRunner().invoke(
        app,
        [
            "loadtest",
            "--scenario",
            "mixed",
            "--host",
            "http://example.invalid:8080",
            "--api-key",
            "k",
        ],
    )
    assert result.exit_code == 2, result.output
    assert "refusing to load example.invalid" in result.output
    assert "--allow-remote" in result.output
