"""``membank capacity plan`` through Typer's CliRunner."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from membank_cli.app import app
from membank_cli.capacity.prices import DEFAULT_PRICES
from membank_cli.capacity.simulate import SimulatedHistory, Simulation
from membank_cli.capacity.sqlite import write_samples
from tests.support.server import ADMIN_KEY, ServerProcess


def _plan(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["capacity", "plan", *args])
    return result.exit_code, result.stdout, result.stderr


def test_simulate_json_is_labelled_and_complete() -> None:
    code, out, err = _plan("--simulate", "--format", "json", "--horizon", "12w")
    assert code == 0, err
    plan = json.loads(out)
    assert plan["simulated"] is True and "simulated" in plan["source"]
    assert plan["horizon_days"] == 84
    assert plan["forecasts"]["memories"]["method"] == "holt-winters"
    assert plan["forecasts"]["memories"]["growth_pct_per_day"] > 0
    assert {r["resource"] for r in plan["runouts"]} == {"memory", "disk", "CPU"}
    rec = plan["recommendation"]
    assert rec["instance"] and rec["monthly_cost"] > 0 and rec["currency"] == "USD"
    assert plan["advice"][0].startswith("SIMULATED")
    assert plan["prices"]["date"] == "2024-06-01"


def test_table_and_charts(tmp_path: Path) -> None:
    for name in ("plan.png", "plan.html"):
        code, out, err = _plan("--simulate", "--chart", str(tmp_path / name))
        assert code == 0, err
        assert "SIMULATED" in out and "Recommendation" in out
        assert (tmp_path / name).stat().st_size > 50_000
        assert "chart written" in err


def test_growth_and_prices_move_the_plan(tmp_path: Path) -> None:
    def cost(*args: str) -> float:
        code, out, err = _plan("--simulate", "--format", "json", *args)
        assert code == 0, err
        return float(json.loads(out)["recommendation"]["monthly_cost"])

    base = cost()
    assert cost("--simulate-growth", "0.02") > base
    code, out, err = _plan("--simulate", "--simulate-growth", "0.04", "--format", "json")
    assert code == 0, err
    huge = json.loads(out)
    assert huge["recommendation"]["monthly_cost"] is None
    assert any("no size in the price table" in a for a in huge["advice"])
    cheap = tmp_path / "prices.toml"
    cheap.write_text(DEFAULT_PRICES.read_text().replace("per_month = ", "per_month = 0.5 * "))
    code, _, err = _plan("--simulate", "--prices", str(cheap))
    assert code == 2 and "price table" in err  # not TOML arithmetic: refused in one line
    halved = DEFAULT_PRICES.read_text()
    for line in DEFAULT_PRICES.read_text().splitlines():
        if line.startswith("per_month"):
            value = float(line.split("=")[1])
            halved = halved.replace(line, f"per_month = {value / 2}")
    cheap.write_text(halved.replace("storage_per_gb_month = 0.08", "storage_per_gb_month = 0.04"))
    assert cost("--prices", str(cheap)) < base


def test_history_file_is_not_labelled_simulated(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    end = datetime.now(UTC)
    write_samples(path, SimulatedHistory(Simulation(days=30, end=end)).generate())
    code, out, err = _plan("--history", str(path), "--format", "json", "--current", "r7i.large")
    assert code == 0, err
    plan = json.loads(out)
    assert plan["simulated"] is False and str(path) in plan["source"]
    assert plan["current"] == {"instance": "r7i.large", "assumed": False, "disk_gib": 100.0}


def test_operator_mistakes_are_one_line() -> None:
    for args, code, needle in (
        (["--simulate", "--prometheus", "http://127.0.0.1:9"], 1, "choose one history"),
        (["--simulate", "--horizon", "3x"], 1, "--horizon"),
        (["--simulate", "--format", "yaml"], 1, "--format"),
        (["--simulate", "--target-backend", "mongo"], 1, "--target-backend"),
        (["--simulate", "--chart", "plan.svg"], 1, ".png or .html"),
        (["--simulate", "--current", "m9.huge"], 2, "no instance 'm9.huge'"),
    ):
        got, _, err = _plan(*args)
        assert got == code, (args, err)
        # One message (Rich wraps it at the runner's 80 columns), no traceback.
        assert err.count("error:") == 1 and "Traceback" not in err, (args, err)
        assert needle in " ".join(err.split()), (args, err)


def test_a_new_servers_empty_history_says_so_and_names_the_way_out(tmp_path: Path) -> None:
    # (A server without the history endpoint: test_capacity_sources, over a 404.)
    server = ServerProcess(tmp_path / "data").start()
    try:
        code, _, err = _plan("--url", server.url, "--api-key", ADMIN_KEY)
    finally:
        server.stop()
    assert code == 1 and "no samples in the history" in err and "--simulate" in err


def test_the_command_line_does_not_load_the_forecasting_libraries() -> None:
    # Every `membank` process imports the app, `membank serve` included.
    probe = (
        "import sys, membank_cli.app; "
        "print([m for m in ('statsmodels', 'pandas', 'matplotlib', 'plotly') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
