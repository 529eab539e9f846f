"""The ``spike`` and ``step`` scenarios' load shapes (a Locust ``LoadTestShape``).

Loaded beside ``locustfile.py`` only for a scenario with a ``shape``; it reads
``--users``, ``--spawn-rate`` and ``--run-time`` (``use_common_options``) and the
scenario's shape settings from the seed file, so the same shape fits a run of
ten seconds or of an hour.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from locust import LoadTestShape

from loadtests.scenarios import DEFAULT_FILE, Scenario, load_scenario
from loadtests.seed import Seed

__all__ = ["ScenarioShape", "users_at"]


def users_at(scenario: Scenario, users: int, progress: float) -> int:
    """Users wanted at ``progress`` (0 to 1) through the run, out of ``users``."""
    if scenario.shape == "spike":
        in_spike = scenario.spike_at <= progress < scenario.spike_at + scenario.spike_length
        return users if in_spike else max(1, round(users * scenario.base_share))
    if scenario.shape == "step":
        step = min(scenario.steps, math.floor(progress * scenario.steps) + 1)
        return max(1, round(users * step / scenario.steps))
    return users


class ScenarioShape(LoadTestShape):
    use_common_options = True

    def __init__(self) -> None:
        super().__init__()
        self._scenario: Scenario | None = None

    def tick(self) -> tuple[int, float] | None:
        if self._scenario is None:
            path = os.environ.get("MEMBANK_LT_SEED")
            self._scenario = (
                Scenario.from_dict(Seed.load(Path(path)).scenario)
                if path
                else load_scenario(
                    os.environ.get("MEMBANK_LT_SCENARIO", "spike"),
                    Path(os.environ.get("MEMBANK_LT_SCENARIOS", DEFAULT_FILE)),
                )
            )
        assert self.runner is not None and self.runner.environment.parsed_options is not None
        options = self.runner.environment.parsed_options
        seconds = float(options.run_time or self._scenario.seconds)
        elapsed = self.get_run_time()
        if elapsed >= seconds:
            return None
        users = int(options.num_users or self._scenario.users)
        spawn_rate = float(options.spawn_rate or self._scenario.spawn_rate)
        return users_at(self._scenario, users, elapsed / seconds), spawn_rate
