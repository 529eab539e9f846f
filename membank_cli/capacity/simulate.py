"""A generated history, so ``membank capacity plan --simulate`` is useful on day one.

Shaped like a real deployment, and labelled as generated wherever it is shown:
memories grow linearly or exponentially at a chosen rate, with more writes on
weekdays and in working hours; request rate and CPU follow the users with a
daily and a weekly season; RSS and disk come from the calibrated
:class:`~membank_cli.capacity.model.MemoryModel`; every figure carries noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import numpy as np

from membank_cli.capacity.model import MemoryModel
from membank_server.domain.capacity import Sample

__all__ = ["SIMULATED", "SimulatedHistory", "Simulation", "weekly_shape"]

SIMULATED = "simulated history (generated, not measured)"

#: Share of an average day's traffic on Monday .. Sunday: weekends are quiet.
_WEEK = np.array([1.08, 1.12, 1.12, 1.10, 1.02, 0.80, 0.76])


def weekly_shape(day_of_week: np.ndarray) -> np.ndarray:
    shape: np.ndarray = _WEEK[day_of_week] / _WEEK.mean()
    return shape


def _daily_shape(hour: np.ndarray) -> np.ndarray:
    # Quiet at night UTC, a broad peak in the afternoon; averages 1 over a day.
    return 1 + 0.55 * np.sin((hour - 9) / 24 * 2 * math.pi)


@dataclass(frozen=True)
class Simulation:
    """What to generate.

    Args:
        days: Length of the history.
        step_minutes: Sampling interval.
        start_memories: Memories on the first day.
        growth: ``linear`` (``rate`` memories a day) or ``exponential`` (``rate`` a day,
            0.01 = 1 % a day).
        rate: The growth rate, as above; averaged over a week (weekdays write more).
        peak_rps: Request rate at the afternoon peak of an average weekday at the start.
        cpu_ms_per_request: CPU time one request costs (100 % = one core).
        noise: Relative noise on every figure.
        end: The last sample's time (now, by default).
        seed: Random seed.
    """

    days: int = 120
    step_minutes: int = 60
    start_memories: int = 150_000
    growth: Literal["linear", "exponential"] = "exponential"
    rate: float = 0.012
    peak_rps: float = 25.0
    cpu_ms_per_request: float = 9.0
    noise: float = 0.04
    backend: str = "edge"
    dimension: int = 384
    end: datetime | None = None
    seed: int = 42


class SimulatedHistory:
    """The :class:`~membank_server.domain.capacity.HistorySource` of a :class:`Simulation`."""

    label = SIMULATED

    def __init__(self, spec: Simulation | None = None) -> None:
        self.spec = spec or Simulation()
        self.notes: list[str] = []

    def generate(self) -> list[Sample]:
        s = self.spec
        rng = np.random.default_rng(s.seed)
        end = (s.end or datetime.now(UTC)).replace(second=0, microsecond=0)
        step = timedelta(minutes=s.step_minutes)
        n = int(s.days * 24 * 60 / s.step_minutes)
        at = [end - step * (n - 1 - i) for i in range(n)]
        t_days = np.arange(n) * s.step_minutes / (24 * 60)
        dow = np.array([a.weekday() for a in at])
        hour = np.array([a.hour + a.minute / 60 for a in at])
        season = weekly_shape(dow) * _daily_shape(hour)
        # Writes follow the same week and day as reads; the trend is the rate's integral.
        if s.growth == "linear":
            per_day = np.full(n, s.rate)
        else:
            per_day = s.start_memories * s.rate * np.exp(s.rate * t_days)
        per_step = per_day * s.step_minutes / (24 * 60) * season
        per_step *= 1 + s.noise * rng.standard_normal(n)
        memories = s.start_memories + np.cumsum(np.clip(per_step, 0, None))
        users = memories / 300 * (1 + 0.01 * rng.standard_normal(n))
        # Requests follow the users (more users, more agents asking), with the season.
        trend = (memories / s.start_memories) ** 0.9
        rps = s.peak_rps / 1.55 * trend * season * (1 + s.noise * rng.standard_normal(n))
        rps = np.clip(rps, 0.05, None)
        cpu = 1.5 + rps * s.cpu_ms_per_request / 10 * (1 + s.noise * rng.standard_normal(n))
        p95 = 6 + 0.04 * rps + 2 * np.abs(rng.standard_normal(n))
        model = MemoryModel(backend="edge", dimension=s.dimension)
        rss = np.array([model.ram_bytes(m) for m in memories]) * (1 + 0.02 * rng.standard_normal(n))
        disk = np.array([model.disk_bytes(m) for m in memories])
        errors = rng.poisson(0.002 * rps * s.step_minutes * 60) / (s.step_minutes * 60)
        return [
            Sample(
                at=at[i],
                memories=int(memories[i]),
                users=int(users[i]),
                disk_bytes=int(disk[i]),
                rss_bytes=int(rss[i]),
                rps=round(float(rps[i]), 3),
                p95_ms=round(float(p95[i]), 2),
                p99_ms=round(float(p95[i] * 1.6), 2),
                cpu_percent=round(float(cpu[i]), 2),
                errors_per_s=float(errors[i]),
                backend=s.backend,
                dimension=s.dimension,
            )
            for i in range(n)
        ]

    async def samples(self, since: datetime | None) -> list[Sample]:
        return [x for x in self.generate() if since is None or x.at >= since]
