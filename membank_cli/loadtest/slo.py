"""Service level objectives and the verdict of a run against them.

The objectives are :class:`membank_server.domain.slo.Slo` (the server's SLIs use the same);
the defaults are the design's: availability 99.9 %, p95 < 50 ms, p99 < 100 ms,
error rate < 0.1 %, throughput > 1,000 requests/s, all over every request of the
run. A scenario may override some (``[scenarios.X.slo]`` in its file, where the
design's figure cannot apply, as for batches of 50), and a TOML file given with
``--slo`` overrides both::

    availability = 0.999   # share of requests answered (not 5xx, not unanswered)
    error_rate = 0.001     # share of requests that failed for any reason (4xx too)
    p95_ms = 50
    p99_ms = 100
    min_rps = 1000
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from membank_cli.loadtest.report import Summary
from membank_server.domain.errors import ConfigError
from membank_server.domain.slo import Slo

__all__ = ["Check", "Slo", "Verdict", "load_slo", "verdict"]


def load_slo(path: Path | None, scenario_overrides: Mapping[str, Any] | None = None) -> Slo:
    """The design's SLOs, then the scenario's overrides, then the file's."""
    slo = Slo().merged(scenario_overrides or {}, "the scenario's slo table")
    if path is None:
        return slo
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read SLOs from {path}: {exc}") from exc
    return slo.merged(data.get("slo", data), str(path))


@dataclass(frozen=True)
class Check:
    sli: str
    objective: str
    measured: str
    ok: bool


@dataclass(frozen=True)
class Verdict:
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def broken(self) -> list[str]:
        return [c.sli for c in self.checks if not c.ok]


def verdict(summary: Summary, slo: Slo) -> Verdict:
    """Judge every request of the run (the aggregate row) against each objective.

    A run with no request at all breaks every objective: nothing was shown to work.
    """
    t = summary.total
    some = t.requests > 0

    def pct(share: float) -> str:
        return f"{share * 100:.3f} %"

    def ms(value: float | None) -> str:
        return "n/a" if value is None else f"{value:g} ms"

    return Verdict(
        (
            Check(
                "availability",
                f">= {pct(slo.availability)}",
                pct(t.availability),
                some and t.availability >= slo.availability,
            ),
            Check(
                "error rate",
                f"<= {pct(slo.error_rate)}",
                pct(t.error_rate),
                some and t.error_rate <= slo.error_rate,
            ),
            Check(
                "p95", f"< {slo.p95_ms:g} ms", ms(t.p95_ms), some and _below(t.p95_ms, slo.p95_ms)
            ),
            Check(
                "p99", f"< {slo.p99_ms:g} ms", ms(t.p99_ms), some and _below(t.p99_ms, slo.p99_ms)
            ),
            Check(
                "throughput",
                f"> {slo.min_rps:,.0f} req/s",
                f"{t.rps:,.1f} req/s",
                some and t.rps > slo.min_rps,
            ),
        )
    )


def _below(value: float | None, limit: float) -> bool:
    return value is not None and value < limit
