"""The plan's chart and text: a real picture, offline HTML, the same figures in every format."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image
from rich.console import Console

from membank_cli.capacity.chart import panels, write_chart
from membank_cli.capacity.forecast import forecast_samples
from membank_cli.capacity.plan import Plan, make_plan
from membank_cli.capacity.prices import load_prices
from membank_cli.capacity.render import plan_dict, render
from membank_cli.capacity.simulate import SIMULATED, SimulatedHistory, Simulation


@pytest.fixture(scope="module")
def plan() -> Plan:
    samples = SimulatedHistory(
        Simulation(end=datetime(2026, 6, 1, tzinfo=UTC), rate=0.01)
    ).generate()
    return make_plan(
        forecast_samples(samples, 3 * 365),
        source=SIMULATED,
        backend="edge",
        history_backend="edge",
        dimension=384,
        horizon_days=90,
        confidence=0.9,
        growth_buffer=0.2,
        prices=load_prices(),
        current=load_prices().by_name("c7i.large"),
    )


def test_png_is_a_real_picture_of_history_and_forecast(plan: Plan, tmp_path: Path) -> None:
    path = tmp_path / "plan.png"
    write_chart(plan, path)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert 50_000 < len(data) < 5_000_000
    pixels = image.imread(str(path))
    assert pixels.shape[0] > 600 and pixels.shape[1] > 1000
    rgb = pixels[..., :3]
    assert rgb.std() > 0.05  # not blank
    # The history's dark blue and the forecast's lighter blue are both drawn.
    for colour in ((0x1F, 0x4E, 0x79), (0x2E, 0x86, 0xC1)):
        near = np.abs(rgb * 255 - np.array(colour)).sum(axis=-1) < 30
        assert near.sum() > 500, colour
    # And the run-out mark's red.
    red = np.abs(rgb * 255 - np.array((0xC0, 0x39, 0x2B))).sum(axis=-1) < 30
    assert red.sum() > 200


def test_panels_carry_the_history_forecast_capacity_and_run_out(plan: Plan) -> None:
    ps = panels(plan)
    assert [p.title.split(" ")[0] for p in ps] == ["Memories", "RAM", "Disk", "CPU"]
    mem = ps[0]
    assert mem.history[-1] == plan.forecasts["memories"].history[-1]
    assert len(mem.at) == plan.horizon_days and mem.at[0] > mem.history_at[-1]
    assert mem.lines and mem.lines[0][0].startswith("c7i.large holds")
    runs_out = next(r for r in plan.runouts if r.resource == "memory").expected
    assert runs_out is not None and runs_out <= mem.at[-1]
    assert any(day == runs_out for day, _ in ps[0].marks)
    assert any(day == runs_out for day, _ in ps[1].marks)


def test_html_chart_works_offline_and_holds_the_data(plan: Plan, tmp_path: Path) -> None:
    path = tmp_path / "plan.html"
    write_chart(plan, path)
    text = path.read_text()
    assert "plotly" in text.lower() and len(text) > 1_000_000  # the library is inline
    # Nothing is fetched when the page opens: no script or stylesheet from elsewhere.
    assert not re.search(r"<script[^>]*\ssrc=", text)
    assert not re.search(r"<link[^>]*\shref=", text)
    assert "SIMULATED" in text
    assert str(int(plan.forecasts["memories"].history[-1])) in text


def test_unknown_chart_suffix_is_refused(plan: Plan, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\.png or \.html"):
        write_chart(plan, tmp_path / "plan.svg")


def test_every_format_says_simulated_and_carries_the_same_cost(
    plan: Plan, capsys: pytest.CaptureFixture[str]
) -> None:
    console = Console(width=200, record=True)
    cost = f"{plan.monthly_cost:,.0f}"
    for fmt in ("json", "markdown", "html"):
        render(plan, fmt, console)
        out = capsys.readouterr().out
        assert "simulated" in out.lower() and cost in out, fmt
    render(plan, "table", console)
    shown = console.export_text()
    assert "SIMULATED" in shown and cost in shown and "runs out on" in shown
    data = plan_dict(plan)
    assert data["simulated"] is True
    assert json.loads(json.dumps(data, default=str))["recommendation"]["monthly_cost"] == (
        pytest.approx(plan.monthly_cost)
    )
