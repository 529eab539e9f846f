"""What ``membank bench index`` measures: how long a server stops answering while the
embedded store builds its HNSW index.

Black-box HTTP against a server on a loopback port: ``n`` memories with client
vectors (one tenant holding ``big_share`` of them, the rest spread over ``users``),
then a build asked for (``POST /v1/collection/optimize``) and followed
(``GET /v1/collection``) to its end. Throughout, one probe searches the big tenant
back to back (one request in flight: each latency is the longest the server kept a
client waiting) and one writer adds a memory every ``write_every`` seconds; after the
build, every write it acknowledged is read back.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field

import httpx
import msgspec
import numpy as np
from rich.progress import Progress

from membank_cli._local_server import bench_auth
from membank_cli.bench._http import pct

__all__ = ["IndexPlan", "IndexReport", "ProbePhase", "measure_index_build"]

_BATCH = 500


@dataclass(frozen=True)
class IndexPlan:
    n: int = 100_000
    users: int = 10
    #: The share of the memories held by one tenant (the one the probe searches).
    big_share: float = 0.2
    dimension: int = 384
    #: Seconds of probing before the build and after it.
    idle: float = 5.0
    #: Seconds between two writes during the build.
    write_every: float = 0.05
    seed: int = 7


@dataclass
class ProbePhase:
    phase: str
    count: int
    p50_ms: float
    p99_ms: float
    max_ms: float


@dataclass
class IndexReport:
    memories: int
    big_tenant: int
    ingest_seconds: float
    build_seconds: float
    indexed_before: int
    indexed_after: int
    writes_during_build: int
    writes_missing_after: int
    build_error: str | None
    probes: list[ProbePhase] = field(default_factory=list)
    #: The latency of each write made during the build (the copy and the switch hold
    #: writes, not searches).
    writes: ProbePhase | None = None
    load_average: list[float] = field(default_factory=list)


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v


async def _ingest(client: httpx.AsyncClient, plan: IndexPlan, progress: Progress) -> int:
    rng = np.random.default_rng(plan.seed)
    big = int(plan.n * plan.big_share)
    task = progress.add_task("ingest (client vectors)", total=plan.n)
    for start in range(0, plan.n, _BATCH):
        count = min(_BATCH, plan.n - start)
        vectors = np.round(_unit(rng, count, plan.dimension), 6).tolist()
        items = [
            {
                "user_id": "big" if start + k < big else f"user-{(start + k) % plan.users}",
                "content": f"bench memory {start + k}",
                "vector": vectors[k],
            }
            for k in range(count)
        ]
        body = msgspec.json.encode({"memories": items})
        r = await client.post("/v1/memories/batch", content=body)
        if r.status_code != 201:
            raise RuntimeError(f"batch answered {r.status_code}: {r.text[:300]}")
        progress.advance(task, count)
    return big


class _Probe:
    def __init__(self, client: httpx.AsyncClient, plan: IndexPlan) -> None:
        self.client = client
        self.rng = np.random.default_rng(plan.seed + 1)
        self.dimension = plan.dimension
        self.samples: list[tuple[float, float]] = []  # (answered at, seconds)
        self.stop = False

    async def run(self) -> None:
        while not self.stop:
            vector = np.round(_unit(self.rng, 1, self.dimension)[0], 6).tolist()
            body = msgspec.json.encode({"user_id": "big", "vector": vector, "limit": 10})
            started = time.perf_counter()
            r = await self.client.post("/v1/search", content=body)
            now = time.perf_counter()
            if r.status_code != 200:
                raise RuntimeError(f"search answered {r.status_code}: {r.text[:300]}")
            self.samples.append((now, now - started))

    def phase(self, name: str, start: float, end: float) -> ProbePhase:
        xs = [d for t, d in self.samples if start <= t <= end] or [0.0]
        return ProbePhase(name, len(xs), pct(xs, 0.5), pct(xs, 0.99), round(max(xs) * 1000, 3))


async def _write_during(
    client: httpx.AsyncClient,
    plan: IndexPlan,
    done: asyncio.Event,
    acked: list[str],
    latencies: list[float],
) -> None:
    rng = np.random.default_rng(plan.seed + 2)
    while not done.is_set():
        vector = np.round(_unit(rng, 1, plan.dimension)[0], 6).tolist()
        item = {"user_id": "writer", "content": f"written during the build {len(acked)}"}
        body = msgspec.json.encode({**item, "vector": vector})
        started = time.perf_counter()
        r = await client.post("/v1/memories", content=body)
        latencies.append(time.perf_counter() - started)
        if r.status_code != 201:
            raise RuntimeError(f"write answered {r.status_code}: {r.text[:300]}")
        acked.append(str(r.json()["id"]))
        await asyncio.sleep(plan.write_every)


async def _stored(client: httpx.AsyncClient, user: str) -> set[str]:
    found: set[str] = set()
    cursor = None
    while True:
        params: dict[str, str | int] = {"user_id": user, "limit": 1000}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/memories", params=params)).json()
        found |= {m["id"] for m in page["items"]}
        cursor = page["next_cursor"]
        if cursor is None:
            return found


async def measure_index_build(url: str, plan: IndexPlan, progress: Progress) -> IndexReport:
    """Ingest, then probe and write while the server builds its index (module docs)."""
    headers = {"content-type": "application/json", **bench_auth()}
    async with httpx.AsyncClient(base_url=url, timeout=300, headers=headers) as client:
        started = time.perf_counter()
        big = await _ingest(client, plan, progress)
        ingest_seconds = time.perf_counter() - started
        before = (await client.get("/v1/collection")).json()
        probe = _Probe(client, plan)
        probing = asyncio.create_task(probe.run())
        t0 = time.perf_counter()
        await asyncio.sleep(plan.idle)
        t1 = time.perf_counter()
        r = await client.post("/v1/collection/optimize")
        if r.status_code != 202:
            raise RuntimeError(f"optimize answered {r.status_code}: {r.text[:300]}")
        done, acked, waits = asyncio.Event(), list[str](), list[float]()
        writing = asyncio.create_task(_write_during(client, plan, done, acked, waits))
        task = progress.add_task("index build", total=None)
        while True:
            await asyncio.sleep(0.25)
            status = (await client.get("/v1/collection")).json()
            if not status["index_build"]["running"]:
                break
        t2 = time.perf_counter()
        done.set()
        await writing
        progress.update(task, total=1, completed=1)
        await asyncio.sleep(plan.idle)
        t3 = time.perf_counter()
        probe.stop = True
        await probing
        missing = set(acked) - await _stored(client, "writer")
    build = status["index_build"]
    return IndexReport(
        memories=plan.n,
        big_tenant=big,
        ingest_seconds=round(ingest_seconds, 2),
        build_seconds=round(t2 - t1, 2),
        indexed_before=int(before["indexed_vectors"]),
        indexed_after=int(status["indexed_vectors"]),
        writes_during_build=len(acked),
        writes_missing_after=len(missing),
        build_error=build["error"],
        probes=[
            probe.phase("before the build", t0, t1),
            probe.phase("during the build", t1, t2),
            probe.phase("after the build", t2, t3),
        ],
        writes=ProbePhase(
            "writes during the build",
            len(waits),
            pct(waits or [0.0], 0.5),
            pct(waits or [0.0], 0.99),
            round(max(waits or [0.0]) * 1000, 3),
        ),
        load_average=[round(x, 2) for x in os.getloadavg()],
    )
