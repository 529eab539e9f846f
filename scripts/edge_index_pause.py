"""In-process pause monitor around an embedded store's index build (README, "Index builds").

Usage (from the repository root): ``.venv/bin/python scripts/edge_index_pause.py 100000``

Makes (once, kept in ``/tmp/edge-index-pause/tpl-N``) an Edge store of N memories with
384-d vectors (a fifth in one tenant), copies it, and builds its index with
``EdgeStore.build_index`` while a thread sleeps 1 ms at a time (each gap past 1 ms is a
pause of the whole process), one task searches the big tenant and one writes 20 times a
second. Prints JSON: the build's per-step report, gaps and search latency before, during
and after, the largest gaps (with their time from the build's start), and writes lost.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from membank_server.domain.model import VectorQuery
from membank_server.storage.edge import EdgeStore
from tests.contract.conftest import _record

DIM = 384


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v


def _summary(gaps: list[float], lat: list[float]) -> dict[str, float]:
    g, s = sorted(gaps) or [0.0], sorted(lat) or [0.0]
    return {
        "gap_p50_ms": round(g[len(g) // 2] * 1e3, 2),
        "gap_p99_ms": round(g[int(0.99 * (len(g) - 1))] * 1e3, 1),
        "gap_max_ms": round(g[-1] * 1e3, 1),
        "search_p50_ms": round(s[len(s) // 2] * 1e3, 2),
        "search_p99_ms": round(s[int(0.99 * (len(s) - 1))] * 1e3, 1),
        "search_max_ms": round(s[-1] * 1e3, 1),
    }


async def _make(path: Path, n: int) -> None:
    store = EdgeStore(path, dimension=DIM, check_on_start=False)
    await store.start()
    rng = np.random.default_rng(1)
    for start in range(0, n, 1000):
        v = _unit(rng, 1000)
        users = ["big" if start + k < n // 5 else f"u{(start + k) % 10}" for k in range(1000)]
        await store.upsert(
            [_record(u, v[k].tolist(), content=f"memory {start + k}") for k, u in enumerate(users)]
        )
    await store.aclose()


async def main(n: int) -> dict[str, Any]:
    root = Path("/tmp/edge-index-pause")
    template, run = root / f"tpl-{n}", root / f"run-{n}"
    if not template.exists():
        await _make(template, n)
    shutil.rmtree(run, ignore_errors=True)
    await asyncio.to_thread(subprocess.run, ["cp", "-a", str(template), str(run)], check=True)
    store = EdgeStore(run, dimension=DIM, check_on_start=False)
    await store.start()
    gaps: list[tuple[float, float]] = []
    lat: list[tuple[float, float]] = []
    acked: list[Any] = []
    stop = threading.Event()

    def monitor() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            time.sleep(0.001)
            now = time.perf_counter()
            gaps.append((now, now - last))
            last = now

    async def reader() -> None:
        rng = np.random.default_rng(2)
        while not stop.is_set():
            query = VectorQuery("big", _unit(rng, 1)[0].tolist(), 10, datetime.now(UTC))
            started = time.perf_counter()
            await store.search(query)
            lat.append((time.perf_counter(), time.perf_counter() - started))
            await asyncio.sleep(0.002)

    async def writer() -> None:
        rng = np.random.default_rng(3)
        while not stop.is_set():
            record = _record("writer", _unit(rng, 1)[0].tolist(), content=f"w {len(acked)}")
            await store.upsert([record])
            acked.append(record.memory.id)
            await asyncio.sleep(0.05)

    thread = threading.Thread(target=monitor, daemon=True)
    thread.start()
    tasks = [asyncio.create_task(reader()), asyncio.create_task(writer())]
    await asyncio.sleep(3)
    t0 = time.perf_counter()
    report = await store.build_index()
    t1 = time.perf_counter()
    await asyncio.sleep(2)
    stop.set()
    await asyncio.gather(*tasks)
    thread.join()
    missing = len(acked) - len(await store.get("writer", acked))
    await store.aclose()
    shutil.rmtree(run, ignore_errors=True)

    def window(a: float, b: float) -> dict[str, float]:
        return _summary([x for t, x in gaps if a <= t <= b], [x for t, x in lat if a <= t <= b])

    top = sorted(((x, t - t0) for t, x in gaps if t0 <= t <= t1), reverse=True)[:8]
    return {
        "n": n,
        "report": report.__dict__,
        "before": window(0, t0),
        "during": window(t0, t1),
        "after": window(t1, float("inf")),
        "largest_gaps_ms_at_s": [(round(x * 1e3, 1), round(t, 2)) for x, t in top],
        "writes": len(acked),
        "missing": missing,
        "load_average": os.getloadavg(),
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(int(sys.argv[1]))), indent=1))
