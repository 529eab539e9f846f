"""Bottlenecks by the design's thresholds, and the changes of tunables that address them.

The thresholds: CPU above 80 % of the server's CPUs, memory above 85 % of what it
may use, p99 above 200 ms, a cache level's hit ratio below 0.8, a queue more than
80 % full. Each bottleneck proposes changes to the tunables the server reports
(``GET /v1/admin/tunables``), always inside their bounds and by at least their
step; a tunable that is not live (it takes a restart) is proposed, never applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from membank_cli.tune.figures import Window

__all__ = ["Proposal", "Thresholds", "bottlenecks", "propose"]


@dataclass(frozen=True)
class Thresholds:
    cpu: float = 0.80
    memory: float = 0.85
    p99_ms: float = 200.0
    hit_ratio: float = 0.80
    queue: float = 0.80


@dataclass(frozen=True)
class Proposal:
    tunable: str
    old: float
    new: float
    live: bool
    reason: str


def bottlenecks(w: Window, t: Thresholds, queues: dict[str, float] | None = None) -> list[str]:
    """What is wrong in ``w``, one line each (empty when nothing is)."""
    found = []
    if w.cpu_share > t.cpu:
        found.append(f"CPU at {w.cpu_share:.0%} of the server's CPUs (> {t.cpu:.0%})")
    if w.memory_share > t.memory:
        found.append(f"memory at {w.memory_share:.0%} of its limit (> {t.memory:.0%})")
    if w.p99_ms is not None and w.p99_ms > t.p99_ms:
        found.append(f"p99 at {w.p99_ms:.0f} ms (> {t.p99_ms:.0f} ms)")
    for level, ratio in sorted(w.hit_ratio.items()):
        if ratio is not None and ratio < t.hit_ratio:
            found.append(f"cache {level} hit ratio {ratio:.2f} (< {t.hit_ratio:.2f})")
    for queue, share in sorted((w.queues if queues is None else queues).items()):
        if share > t.queue:
            found.append(f"queue {queue} {share:.0%} full (> {t.queue:.0%})")
    return found


def _step(tunable: dict[str, Any], up: bool) -> float | None:
    """The next value of a tunable, up (at least doubled) or down (at most halved), inside
    its bounds; None when it is at the end already."""
    value, step = tunable["value"], tunable["step"]
    lo, hi = tunable["minimum"], tunable["maximum"]
    new = max(value * 2, value + step, lo) if up else min(value / 2, value - step, hi)
    new = min(max(new, lo), hi)
    if tunable["integer"]:
        new = float(round(new))
    return None if new == value else new


def propose(
    w: Window,
    tunables: list[dict[str, Any]],
    t: Thresholds | None = None,
    queues: dict[str, float] | None = None,
) -> list[Proposal]:
    """Changes for the bottlenecks of ``w``, most promising first, one per tunable."""
    t = t or Thresholds()
    by_name = {x["name"]: x for x in tunables}
    wanted: list[tuple[str, bool, str]] = []
    l1 = w.hit_ratio.get("l1")
    if l1 is not None and l1 < t.hit_ratio:
        reason = f"L1 hit ratio {l1:.2f} < {t.hit_ratio:.2f}"
        wanted += [("cache.l1_max_entries", True, reason), ("cache.l1_max_bytes", True, reason)]
    shared = [r for level, r in w.hit_ratio.items() if level != "l1" and r is not None]
    if shared and min(shared) < t.hit_ratio:
        wanted.append(("cache.search_ttl", True, f"shared cache hit ratio {min(shared):.2f}"))
    if w.p99_ms is not None and w.p99_ms > t.p99_ms:
        wanted.append(("search.hnsw_ef", False, f"p99 {w.p99_ms:.0f} ms > {t.p99_ms:.0f} ms"))
    if w.cpu_share > t.cpu:
        reason = f"CPU {w.cpu_share:.0%} > {t.cpu:.0%}"
        wanted += [("search.hnsw_ef", False, reason), ("server.workers", True, reason)]
    if w.memory_share > t.memory:
        reason = f"memory {w.memory_share:.0%} > {t.memory:.0%}"
        wanted.append(("cache.l1_max_bytes", False, reason))
    for queue, share in (w.queues if queues is None else queues).items():
        if share > t.queue:
            reason = f"queue {queue} {share:.0%} full"
            wanted += [
                ("jobs.embed_store.max", True, reason),
                ("embedder.batch_size", True, reason),
                ("server.workers", True, reason),
            ]
    proposals: list[Proposal] = []
    seen: set[str] = set()
    for name, up, reason in wanted:
        tunable = by_name.get(name)
        if tunable is None or name in seen:
            continue
        new = _step(tunable, up)
        if new is None:
            continue
        seen.add(name)
        proposals.append(Proposal(name, tunable["value"], new, tunable["live"], reason))
    return proposals
