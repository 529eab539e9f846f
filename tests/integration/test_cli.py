"""The ``membank`` command through Typer's CliRunner, on a real embedded store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from membank_cli.app import app


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"MEMBANK_STORAGE__EDGE__PATH": str(tmp_path / "data")}


def test_config_show_masks_secrets(env: dict[str, str]) -> None:
    result = CliRunner().invoke(
        app, ["config", "show"], env={**env, "MEMBANK_EMBEDDER__API_KEY": "sk-live-123"}
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["embedder"]["api_key"] == "***"
    assert "sk-live-123" not in result.output


def test_bad_setting_is_one_line_and_exit_2(env: dict[str, str]) -> None:
    for args in (["config", "show"], ["serve"], ["collection", "info"]):
        result = CliRunner().invoke(app, args, env={**env, "MEMBANK_SERVER__PORT": "eighty"})
        assert result.exit_code == 2, (args, result.output)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "server.port" in lines[0], result.stderr


def test_collection_setup_info_drop(env: dict[str, str], tmp_path: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["collection", "setup", "--json"], env=env)
    assert first.exit_code == 0, first.output
    info = json.loads(first.stdout)
    assert info["backend"] == "edge" and info["dimension"] == 384
    assert info["live memories"] == 0 and "user_id" in info["payload_indexes"]
    again = runner.invoke(app, ["collection", "setup"], env=env)
    assert again.exit_code == 0 and "membank collection" in again.stdout
    shown = runner.invoke(app, ["collection", "info", "--json"], env=env)
    assert json.loads(shown.stdout)["collection"] == "memories"
    refused = runner.invoke(app, ["collection", "drop"], env=env)
    assert refused.exit_code == 1 and "--yes" in refused.stderr
    assert (tmp_path / "data" / "memories").exists()
    dropped = runner.invoke(app, ["collection", "drop", "--yes"], env=env)
    assert dropped.exit_code == 0, dropped.output
    assert not (tmp_path / "data" / "memories").exists()


def test_collection_on_a_folder_in_use_fails_clearly(env: dict[str, str]) -> None:
    from tests.support.server import ServerProcess

    server = ServerProcess(Path(env["MEMBANK_STORAGE__EDGE__PATH"])).start()
    try:
        result = CliRunner().invoke(app, ["collection", "info"], env=env)
        assert result.exit_code == 3, result.output
        assert "another membank process" in result.stderr
    finally:
        server.stop()


def test_workers_need_a_server_backend(env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["serve", "--workers", "2"], env=env)
    assert result.exit_code == 2 and "server.workers" in result.stderr
