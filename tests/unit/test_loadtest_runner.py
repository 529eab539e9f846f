"""The Locust command line the runner builds (nothing is run here)."""

from __future__ import annotations

from pathlib import Path

from membank_cli.loadtest.runner import LocustPlan, locust_command


def _plan(**changes: object) -> LocustPlan:
    values: dict[str, object] = {
        "loadtests": Path("/lt"),
        "host": "http://127.0.0.1:9",
        "users": 200,
        "spawn_rate": 50.0,
        "seconds": 90.0,
        "processes": 1,
        "out": Path("/out"),
        "seed_file": Path("/tmp/x/seed.json"),
    }
    return LocustPlan(**(values | changes))  # type: ignore[arg-type]


def test_headless_with_reports_and_our_own_verdict() -> None:
    cmd = locust_command(_plan())
    assert cmd[cmd.index("-f") + 1] == "/lt/locustfile.py"
    for flag, value in [
        ("--host", "http://127.0.0.1:9"),
        ("--users", "200"),
        ("--run-time", "90s"),
        ("--csv", "/out/locust"),
        ("--html", "/out/report.html"),
        ("--exit-code-on-error", "0"),
    ]:
        assert cmd[cmd.index(flag) + 1] == value
    assert "--headless" in cmd
    assert "--processes" not in cmd


def test_shape_file_and_worker_processes_only_when_asked() -> None:
    cmd = locust_command(_plan(shape=True, processes=3))
    assert cmd[cmd.index("-f") + 1] == "/lt/locustfile.py,/lt/shape.py"
    assert cmd[cmd.index("--processes") + 1] == "3"
