"""Service level objectives: the design's targets, shared by the server's SLIs and the load test.

``GET /v1/admin/sli`` judges the server's own figures against them (targets from
the ``[observe.slo]`` settings), ``membank loadtest`` judges a run: one
definition, two users. The defaults are the design's:

    availability = 0.999   # share of requests answered (not 5xx, not unanswered)
    error_rate = 0.001     # share of requests that failed for any reason (4xx too)
    p95_ms = 50
    p99_ms = 100
    min_rps = 1000
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from membank_server.domain.errors import ConfigError

__all__ = ["Slo"]


@dataclass(frozen=True)
class Slo:
    availability: float = 0.999
    error_rate: float = 0.001
    p95_ms: float = 50.0
    p99_ms: float = 100.0
    min_rps: float = 1000.0

    def merged(self, overrides: Mapping[str, Any], source: str) -> Slo:
        """These objectives with ``overrides`` (from ``source``, named in errors) applied."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(
                f"{source}: unknown SLO {unknown[0]!r} (known: {', '.join(sorted(known))})"
            )
        values: dict[str, float] = {}
        for name, value in overrides.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ConfigError(f"{source}: SLO {name} must be a number >= 0, got {value!r}")
            values[name] = float(value)
        slo = dataclasses.replace(self, **values)
        if slo.availability > 1 or slo.error_rate > 1:
            raise ConfigError(f"{source}: availability and error_rate are shares between 0 and 1")
        return slo
