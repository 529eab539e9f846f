"""The ``spike`` and ``step`` scenarios' load shapes (a Locust ``LoadTestShape``).

Loaded beside ``locustfile.py`` only for a scenario with a ``shape``; it reads
``--users``, ``--spawn-rate`` and ``--run-time`` (``use_common_options``) and the
scenario's shape settings from the seed file, so the same shape fits a run of
ten seconds or of an hour.
"""

from __future__ import annotations

import os
from pathlib import Path

from locust import LoadTestShape

from loadtests.scenarios import DEFAULT_FILE, Scenario, load_scenario
from loadtests.seed import Seed

__all__ = ["ScenarioShape"]


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
        return self._scenario.users_at(users, elapsed / seconds), spawn_rate
