"""Capacity planning on generated histories whose growth and season are known."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest

from membank_cli.capacity.forecast import Forecast, fit_forecast, forecast_samples
from membank_cli.capacity.model import MemoryModel
from membank_cli.capacity.plan import Plan, make_plan
from membank_cli.capacity.prices import Instance, PriceTable, load_prices
from membank_cli.capacity.simulate import SimulatedHistory, Simulation
from membank_server.domain.capacity import Sample

END = datetime(2026, 6, 1, tzinfo=UTC)


def _history(**kw: object) -> list[Sample]:
    return SimulatedHistory(Simulation(end=END, **kw)).generate()  # type: ignore[arg-type]


def _memories(samples: list[Sample], days: int = 90) -> Forecast:
    return fit_forecast("memories", [s.at for s in samples], [s.memories for s in samples], days)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_linear_growth_rate_is_recovered_within_10_percent(seed: int) -> None:
    f = _memories(_history(growth="linear", rate=5_000, start_memories=100_000, seed=seed))
    assert f.method == "holt-winters"
    assert f.growth_per_day == pytest.approx(5_000, rel=0.10)


@pytest.mark.parametrize(("rate", "step"), [(0.01, 60), (0.02, 15)])
def test_exponential_growth_rate_is_recovered_within_10_percent(rate: float, step: int) -> None:
    f = _memories(_history(growth="exponential", rate=rate, step_minutes=step))
    assert f.method == "holt-winters"
    assert f.growth_pct_per_day == pytest.approx(100 * rate, rel=0.10)
    # At the horizon too: the true curve grows by e^(rate x days) from the last value.
    expected = f.history[-1] * np.exp(rate * 90)
    assert f.at_day(90) == pytest.approx(expected, rel=0.10)


def test_the_weekly_season_is_in_the_forecast() -> None:
    samples = _history(growth="linear", rate=2_000)
    f = fit_forecast("rps", [s.at for s in samples], [s.rps for s in samples], 28)
    weekend = np.array([d.weekday() >= 5 for d in f.at])
    # Weekends carry about 0.7 of a weekday's traffic in the generator.
    ratio = f.mean[weekend].mean() / f.mean[~weekend].mean()
    assert 0.6 < ratio < 0.85


def test_little_history_gets_a_line_and_says_so() -> None:
    f = _memories(_history(days=10, growth="linear", rate=3_000))
    assert f.method == "linear"
    assert any("straight line" in n for n in f.notes)
    assert f.growth_per_day == pytest.approx(3_000, rel=0.10)


def test_two_full_weeks_switch_to_holt_winters() -> None:
    assert _memories(_history(days=13)).method == "linear"
    assert _memories(_history(days=16)).method == "holt-winters"


def test_fit_error_is_measured_on_held_out_days_and_the_band_holds_the_forecast() -> None:
    samples = _history()
    forecasts = forecast_samples(samples, 120, confidence=0.9)
    assert set(forecasts) == {"memories", "rss_bytes", "disk_bytes", "rps", "cpu_percent"}
    for f in forecasts.values():
        assert "held out" in f.error_on and 0 <= f.error_pct < 10, (f.metric, f.error_pct)
        assert (f.lower <= f.mean).all() and (f.mean <= f.upper).all() and (f.lower >= 0).all()
        assert len(f.at) == 120 and f.at[0] > f.history_at[-1]
    # A wider confidence gives a band at least as wide.
    wide = forecast_samples(samples, 120, confidence=0.99)["rps"]
    assert (wide.upper - wide.lower).mean() >= (
        forecasts["rps"].upper - forecasts["rps"].lower
    ).mean()


def test_too_little_history_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 3"):
        forecast_samples(_history(days=1)[:2], 90)


def _plan(samples: list[Sample], prices: PriceTable | None = None, **kw: object) -> Plan:
    last = samples[-1]
    args: dict[str, object] = {
        "source": "simulated",
        "backend": "edge",
        "history_backend": last.backend,
        "dimension": last.dimension,
        "horizon_days": 90,
        "confidence": 0.9,
        "growth_buffer": 0.2,
        "prices": prices or load_prices(),
    }
    args.update(kw)
    return make_plan(forecast_samples(samples, 3 * 365), **args)  # type: ignore[arg-type]


def test_recommendations_move_when_prices_change() -> None:
    samples = _history(rate=0.01)
    table = load_prices()
    base = _plan(samples, table)
    assert base.chosen.instance is not None
    doubled = replace(
        table,
        instances=tuple(replace(i, per_month=i.per_month * 2) for i in table.instances),
        storage_per_gb_month=table.storage_per_gb_month * 2,
    )
    assert _plan(samples, doubled).monthly_cost == pytest.approx(2 * base.monthly_cost)
    # A big machine on sale becomes the cheapest that fits: the plan takes it.
    sale = replace(table, instances=(*table.instances, Instance("big-on-sale", 64, 512, 10.0)))
    moved = _plan(samples, sale)
    assert moved.chosen.instance and moved.chosen.instance.name == "big-on-sale"
    assert moved.monthly_cost < base.monthly_cost


def test_recommendations_and_run_out_dates_move_with_growth() -> None:
    slow = _plan(_history(rate=0.005), current=load_prices().by_name("m7i.large"))
    fast = _plan(_history(rate=0.015), current=load_prices().by_name("m7i.large"))
    assert fast.memories_needed > 1.5 * slow.memories_needed
    assert fast.chosen.ram_bytes > slow.chosen.ram_bytes
    assert fast.monthly_cost >= slow.monthly_cost
    slow_day, fast_day = (
        next(r.expected for r in p.runouts if r.resource == "memory") for p in (slow, fast)
    )
    assert fast_day is not None
    assert slow_day is None or fast_day < slow_day


def test_a_bigger_current_machine_runs_out_later() -> None:
    samples = _history(rate=0.01)
    table = load_prices()
    small = _plan(samples, current=table.by_name("m7i.large"))
    big = _plan(samples, current=table.by_name("r7i.xlarge"))
    small_day, big_day = (
        next(r.expected for r in p.runouts if r.resource == "memory") for p in (small, big)
    )
    assert small_day is not None
    assert big_day is None or big_day > small_day
    assert any("memory runs out on" in a for a in small.advice)


def test_qdrant_target_gets_a_cluster_and_quantization_advice() -> None:
    plan = _plan(_history(rate=0.02, start_memories=2_000_000), backend="qdrant")
    assert plan.cluster is not None and plan.cluster.kind == "qdrant"
    assert plan.cluster.nodes >= 2 and plan.cluster.replication_factor == 2
    assert plan.cluster.shard_number >= plan.cluster.nodes
    assert plan.app is not None and plan.app[1] >= 2
    binary = next(s for s in plan.sizings if s.quantization == "binary")
    assert not binary.available and "recall" in binary.why_not  # 384-d is too small for it
    scalar = next(s for s in plan.sizings if s.quantization == "scalar")
    none = next(s for s in plan.sizings if s.quantization == "none")
    assert scalar.ram_bytes < none.ram_bytes
    assert scalar.monthly_cost is not None and none.monthly_cost is not None
    assert scalar.monthly_cost <= none.monthly_cost
    assert plan.chosen.quantization == "scalar" or scalar.monthly_cost == none.monthly_cost


def test_the_embedded_store_offers_no_quantization() -> None:
    plan = _plan(_history())
    assert plan.chosen.quantization == "none"
    assert all(not s.available for s in plan.sizings if s.quantization != "none")
    assert plan.advice[0].startswith("SIMULATED")


def test_model_shapes() -> None:
    edge = MemoryModel()
    assert edge.ram_per_memory() > edge.full_vector_bytes  # vectors plus payload and ids
    assert MemoryModel(dimension=768).ram_per_memory() - edge.ram_per_memory() == 384 * 4
    assert MemoryModel(backend="qdrant").hnsw_bytes == pytest.approx(2 * 16 * 4 * 1.1)
    scalar = MemoryModel(backend="qdrant", quantization="scalar")
    assert scalar.resident_vector_bytes == 384 + 4
    # pgvector packs whole HNSW tuples into 8 KiB pages: 4 a page at 384-d (measured:
    # 2,048 B a vector), one a page at 1536-d.
    assert MemoryModel(backend="pgvector").pg_index_bytes == 2048
    assert MemoryModel(backend="pgvector", dimension=1536).pg_index_bytes == 8192
    assert edge.memories_fitting(edge.ram_bytes(1e6), edge.disk_bytes(1e6)) == pytest.approx(1e6)
