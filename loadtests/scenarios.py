"""Scenario definitions: ``scenarios.toml`` read into a checked ``Scenario``."""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_FILE",
    "ENDPOINTS",
    "Scenario",
    "ScenarioError",
    "load_scenario",
    "parse_duration",
    "scenario_names",
]

DEFAULT_FILE = Path(__file__).with_name("scenarios.toml")

#: task -> the request name Locust records it under (one row per endpoint in the reports).
ENDPOINTS: dict[str, str] = {
    "search": "POST /v1/search",
    "add": "POST /v1/memories",
    "batch": "POST /v1/memories/batch",
    "get": "GET /v1/memories/{id}",
    "list": "GET /v1/memories",
    "update": "PATCH /v1/memories/{id}",
    "history": "GET /v1/memories/{id}/history",
    "delete": "DELETE /v1/memories/{id}",
}
_SHAPES = ("spike", "step")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smh]?)$")


class ScenarioError(ValueError):
    """A scenario file or value that cannot be used; the message names it."""


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str = ""
    users: int = 50
    spawn_rate: float = 50.0
    duration: str = "60s"
    think_time: tuple[float, float] = (0.1, 0.2)
    rate_per_user: float | None = None
    tenants: int = 200
    memories_per_tenant: int = 20
    fresh_queries: float = 0.1
    hot_queries: int = 0
    batch_size: int = 50
    key_rate: float = 1_000_000
    weights: dict[str, int] = field(default_factory=lambda: {"search": 1})
    shape: str | None = None
    base_share: float = 0.2
    spike_at: float = 0.4
    spike_length: float = 0.2
    steps: int = 5
    slo: dict[str, Any] = field(default_factory=dict)

    @property
    def endpoints(self) -> list[str]:
        """The request names this scenario's tasks make, in weight order."""
        ordered = sorted(self.weights.items(), key=lambda kv: -kv[1])
        return [ENDPOINTS[task] for task, weight in ordered if weight > 0]

    def users_at(self, users: int, progress: float) -> int:
        """Users wanted at ``progress`` (0 to 1) through the run, out of ``users``."""
        if self.shape == "spike":
            in_spike = self.spike_at <= progress < self.spike_at + self.spike_length
            return users if in_spike else max(1, round(users * self.base_share))
        if self.shape == "step":
            step = min(self.steps, math.floor(progress * self.steps) + 1)
            return max(1, round(users * step / self.steps))
        return users

    @property
    def seconds(self) -> float:
        return parse_duration(self.duration)

    def scaled(self, factor: float) -> Scenario:
        """The same scenario over ``factor`` times the data (at least one tenant)."""
        return dataclasses.replace(self, tenants=max(1, round(self.tenants * factor)))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scenario:
        return _build(str(data.get("name", "")), data)


def parse_duration(text: str) -> float:
    """``"90"``, ``"90s"``, ``"10m"`` or ``"1h"`` in seconds."""
    m = _DURATION.match(text.strip())
    if not m or float(m.group(1)) <= 0:
        raise ScenarioError(f"duration {text!r} is not a positive number of s, m or h")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def _load(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ScenarioError(f"cannot read scenarios from {path}: {exc}") from exc


def scenario_names(path: Path = DEFAULT_FILE) -> list[str]:
    return list(_load(path).get("scenarios", {}))


def load_scenario(name: str, path: Path = DEFAULT_FILE) -> Scenario:
    """The scenario ``name`` of the file, its defaults applied and every value checked."""
    data = _load(path)
    scenarios = data.get("scenarios", {})
    if name not in scenarios:
        raise ScenarioError(
            f"no scenario {name!r} in {path}: choose from {', '.join(scenarios) or '(none)'}"
        )
    return _build(name, {**data.get("defaults", {}), **scenarios[name]})


def _build(name: str, values: dict[str, Any]) -> Scenario:
    known = {f.name for f in dataclasses.fields(Scenario)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ScenarioError(f"scenario {name!r}: unknown setting {unknown[0]!r}")
    values = {**values, "name": name}
    if "think_time" in values:
        values["think_time"] = tuple(float(v) for v in values["think_time"])
    try:
        scenario = Scenario(**values)
    except TypeError as exc:
        raise ScenarioError(f"scenario {name!r}: {exc}") from exc
    _check(scenario)
    return scenario


def _check(s: Scenario) -> None:
    def bad(what: str) -> ScenarioError:
        return ScenarioError(f"scenario {s.name!r}: {what}")

    unknown = sorted(set(s.weights) - set(ENDPOINTS))
    if unknown:
        raise bad(f"unknown task {unknown[0]!r} (tasks: {', '.join(ENDPOINTS)})")
    if not any(w > 0 for w in s.weights.values()) or any(w < 0 for w in s.weights.values()):
        raise bad("weights must be whole numbers >= 0, at least one above 0")
    if s.users < 1 or s.spawn_rate <= 0 or s.tenants < 1 or s.memories_per_tenant < 1:
        raise bad("users, spawn_rate, tenants and memories_per_tenant must be positive")
    if len(s.think_time) != 2 or not 0 <= s.think_time[0] <= s.think_time[1]:
        raise bad("think_time must be [min, max] with 0 <= min <= max")
    if s.rate_per_user is not None and s.rate_per_user <= 0:
        raise bad("rate_per_user must be positive")
    if not 0 <= s.fresh_queries <= 1 or s.hot_queries < 0 or not 1 <= s.batch_size <= 1000:
        raise bad("fresh_queries in [0, 1], hot_queries >= 0, batch_size in [1, 1000]")
    if s.shape is not None and s.shape not in _SHAPES:
        raise bad(f"shape must be one of {', '.join(_SHAPES)}")
    if not (0 < s.base_share <= 1 and 0 <= s.spike_at < 1 and 0 < s.spike_length <= 1):
        raise bad("base_share, spike_at and spike_length are shares of users and duration")
    if s.steps < 1:
        raise bad("steps must be at least 1")
    parse_duration(s.duration)
