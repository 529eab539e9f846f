"""What a window of a running server looked like: from two of its totals (``/v1/admin/totals``).

The tuner reads the server's cumulative totals at the start and the end of a
window and works from their difference: requests and their latency histogram
(p95, p99 interpolated as the server does), CPU used against the CPUs it has,
resident memory against its limit, each cache level's hit ratio, and how full the job
queue is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from membank_server.domain.errors import MembankError
from membank_server.domain.observe import quantile_ms

__all__ = ["OBJECTIVES", "Window", "better", "window_of"]

#: Objective -> True when lower is better.
OBJECTIVES = {"p99": True, "throughput": False, "memory": True}


@dataclass(frozen=True)
class Window:
    seconds: float
    requests: int
    server_errors: int
    p95_ms: float | None
    p99_ms: float | None
    rps: float
    #: CPU used over the CPUs the server has (1 = all of them busy).
    cpu_share: float
    rss_bytes: int
    #: Resident memory over the memory the server may use.
    memory_share: float
    #: Cache level -> hits / (hits + misses) in the window (None: no look-up).
    hit_ratio: dict[str, float | None]
    #: Queue -> how full it is at the end (items waiting / its limit); only the
    #: ingestion pipeline's ``jobs`` queue, when the server has one.
    queues: dict[str, float] = field(default_factory=dict)

    def objective(self, name: str) -> float | None:
        if name == "p99":
            return self.p99_ms
        if name == "throughput":
            return self.rps
        if name == "memory":
            return float(self.rss_bytes)
        raise MembankError(f"--objective must be one of {', '.join(OBJECTIVES)}, not {name!r}")


def _hits(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float | None]:
    ratios: dict[str, float | None] = {}
    for level, outcomes in after.items():
        old = before.get(level, {})
        hits = outcomes.get("hit", 0) - old.get("hit", 0)
        misses = outcomes.get("miss", 0) - old.get("miss", 0)
        ratios[level] = hits / (hits + misses) if hits + misses > 0 else None
    return ratios


def window_of(before: dict[str, Any], after: dict[str, Any], seconds: float) -> Window:
    """The window between two answers of ``/v1/admin/totals`` taken ``seconds`` apart."""
    latency = [max(0, a - b) for a, b in zip(after["latency"], before["latency"], strict=True)]
    requests = max(0, after["requests"] - before["requests"])
    cpu = max(0.0, after["cpu_seconds"] - before["cpu_seconds"])
    seconds = max(seconds, 1e-9)
    limit = after["memory_limit_bytes"] or 1
    return Window(
        seconds=seconds,
        requests=requests,
        server_errors=max(0, after["server_errors"] - before["server_errors"]),
        p95_ms=quantile_ms(latency, 0.95),
        p99_ms=quantile_ms(latency, 0.99),
        rps=requests / seconds,
        cpu_share=cpu / seconds / max(1, after["cpus"]),
        rss_bytes=after["rss_bytes"],
        memory_share=after["rss_bytes"] / limit,
        hit_ratio=_hits(before["cache"], after["cache"]),
        queues=(
            {"jobs": after["queue_depth"] / after["queue_capacity"]}
            if after.get("queue_capacity")
            else {}
        ),
    )


def better(objective: str, before: float | None, after: float | None, margin: float) -> bool:
    """True when ``after`` beats ``before`` by at least ``margin`` (a share) on ``objective``."""
    if before is None or after is None:
        return False
    if OBJECTIVES[objective]:
        return after <= before * (1 - margin)
    return after >= before * (1 + margin)
