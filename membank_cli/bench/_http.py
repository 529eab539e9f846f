"""Timed HTTP for the benches: request bodies made before the clock starts, each answer timed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
from rich.progress import Progress

from membank_cli._local_server import bench_auth

__all__ = ["Phase", "drive", "pct"]


@dataclass
class Phase:
    phase: str
    count: int
    seconds: float
    per_second: float
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None


def pct(samples: Sequence[float], q: float) -> float:
    """The ``q`` quantile of latencies in seconds, in milliseconds."""
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)


async def drive(
    url: str,
    method: str,
    path: str,
    bodies: Sequence[bytes],
    concurrency: int,
    progress: Progress,
    label: str,
) -> tuple[float, list[float]]:
    """Send every body with ``concurrency`` in flight; (seconds in all, each latency)."""
    latencies: list[float] = []
    task = progress.add_task(label, total=len(bodies))
    queue = iter(bodies)
    headers = {"content-type": "application/json", **bench_auth()}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:

        async def worker() -> None:
            for body in queue:
                started = time.perf_counter()
                r = await client.request(method, path, content=body, headers=headers)
                latencies.append(time.perf_counter() - started)
                if r.status_code >= 300:
                    raise RuntimeError(f"{path} answered {r.status_code}: {r.text[:300]}")
                progress.advance(task)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started, latencies
