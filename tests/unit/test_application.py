"""The CLI's Application: settings once, run/close order, abort's lines and exit codes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import typer

from membank_cli.application import Application
from membank_server.domain.errors import ConfigError, MembankError, StorageUnavailable


class Resource:
    def __init__(self, name: str, journal: list[str], fail_start: bool = False) -> None:
        self.name, self.journal, self.fail_start = name, journal, fail_start

    async def start(self) -> None:
        if self.fail_start:
            raise StorageUnavailable(f"{self.name} is down")
        self.journal.append(f"start {self.name}")

    async def aclose(self) -> None:
        self.journal.append(f"close {self.name}")


def test_settings_are_read_once_from_the_given_environment_and_overrides() -> None:
    app = Application(environ={"MEMBANK_SERVER__PORT": "9001"})
    app.override({"MEMBANK_SERVER__HOST": "127.0.0.9"})
    first = app.settings
    assert (first.server.port, first.server.host) == (9001, "127.0.0.9")
    assert app.settings is first
    with pytest.raises(RuntimeError):
        app.override({"MEMBANK_SERVER__PORT": "9002"})


def test_the_config_file_comes_before_the_environment(tmp_path: Path) -> None:
    toml = tmp_path / "membank.toml"
    toml.write_text("[server]\nport = 9100\nhost = '127.0.0.5'\n")
    app = Application(environ={"MEMBANK_SERVER__PORT": "9200"})
    app.config_file = toml
    assert (app.settings.server.port, app.settings.server.host) == (9200, "127.0.0.5")


def test_a_bad_setting_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    app = Application(environ={"MEMBANK_SERVER__PORT": "eighty"})
    with pytest.raises(typer.Exit) as stopped:
        _ = app.settings
    assert stopped.value.exit_code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "server.port" in lines[0]


def test_run_closes_what_it_started_last_first_however_work_ends() -> None:
    app, journal = Application(environ={}), []

    async def work() -> str:
        await app.started(Resource("a", journal))
        await app.started(Resource("b", journal))
        return "done"

    assert app.run(work) == "done"
    assert journal == ["start a", "start b", "close b", "close a"]

    journal.clear()

    async def failing() -> None:
        await app.started(Resource("a", journal))
        await app.started(Resource("b", journal, fail_start=True))

    with pytest.raises(typer.Exit) as stopped:
        app.run(failing)
    assert stopped.value.exit_code == 3  # Unavailable
    assert journal == ["start a", "close a"]


def test_nothing_is_started_outside_run() -> None:
    journal: list[str] = []
    with pytest.raises(RuntimeError, match="inside"):
        asyncio.run(Application(environ={}).started(Resource("stray", journal)))
    assert journal == []  # refused before starting: nothing is left open


@pytest.mark.parametrize(
    ("error", "code"),
    [
        ("plain words", 1),
        (MembankError("something membank refused"), 1),
        (ConfigError("bad setting: server.port"), 2),
        (StorageUnavailable("another membank process holds the folder"), 3),
    ],
)
def test_abort_prints_one_line_with_the_exit_code_of_its_kind(
    error: MembankError | str, code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(typer.Exit) as stopped:
        Application(environ={}).abort(error)
    assert stopped.value.exit_code == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err


def test_an_unexpected_error_gets_its_traceback_without_locals(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def leaky() -> None:
        token = "sk-" + "live" * 3  # a local a traceback with locals would show
        raise ValueError(f"broken after {len(token)} characters")

    try:
        leaky()
    except ValueError as exc:
        with pytest.raises(typer.Exit) as stopped:
            Application(environ={}).abort(exc)
    assert stopped.value.exit_code == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "ValueError" in err and "broken after 15" in err
    assert "sk-livelivelive" not in err
