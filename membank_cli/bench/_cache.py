"""What ``membank bench cache`` does: four ``wrk`` runs of one search request.

Each run is against a fresh server process on the same data: L1 hits, L2 hits (L1
off, Redis on), misses (cache off: embed the query and search the store), and a
bare Litestar app that answers the same payload from a dict (the ceiling).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

from membank_cli._local_server import bench_auth, bench_security, free_port, local_server
from membank_cli.bench._load import Load, wrk_load
from membank_server.domain.errors import MembankError

__all__ = ["CachePlan", "CachedRun", "run_cached"]


@dataclass(frozen=True)
class CachePlan:
    """What ``membank bench cache`` measures, from its options."""

    #: The Redis of the L2 run (on this machine).
    redis_url: str
    #: Seconds per wrk run.
    seconds: int = 10
    #: wrk's open connections.
    connections: int = 32
    #: Users the ingested memories spread over.
    users: int = 1_000


@dataclass
class CachedRun:
    name: str
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    of_ceiling: float = 0.0


def _wrk(url: str, body: bytes, plan: CachePlan) -> tuple[float, float, float]:
    load = Load(url, "/v1/search", body, bench_auth(), plan.seconds, plan.connections)
    result = wrk_load(load)
    return result.requests_per_second, result.p50_ms, result.p99_ms


def _ingest(http: httpx.Client, users: int) -> None:
    rng = np.random.default_rng(3)
    for start in range(0, users * 10, 1000):
        vectors = rng.standard_normal((1000, 384)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        http.post(
            "/v1/memories/batch",
            json={
                "memories": [
                    {
                        "user_id": f"user-{(start + i) % users}",
                        "content": f"fact {start + i}",
                        "vector": v,
                    }
                    for i, v in enumerate(np.round(vectors, 5).tolist())
                ]
            },
        ).raise_for_status()


def run_cached(plan: CachePlan) -> list[CachedRun]:
    """Ingest a small set, then measure the four runs; figures relative to the ceiling."""
    if shutil.which("wrk") is None:
        raise MembankError(
            "bench cache needs wrk (apt-get install wrk): a Python client would measure itself"
        )
    with tempfile.TemporaryDirectory(prefix="membank-bench-cache-") as tmp:
        data = Path(tmp)
        base = {**bench_security(), "MEMBANK_CACHE__REDIS_URL": plan.redis_url}
        with (
            local_server(data, base, quiet=True) as server,
            httpx.Client(base_url=server.url, timeout=120, headers=bench_auth()) as http,
        ):
            http.delete("/v1/cache")  # the Redis may hold an earlier run's entries
            _ingest(http, plan.users)
            body = json.dumps(
                {"user_id": "user-7", "query": "what do I like to eat?", "limit": 10}
            ).encode()
            payload = http.post(
                "/v1/search", content=body, headers={"content-type": "application/json"}
            ).content
        runs = []
        for name, env in (
            ("L1 hit", base),
            ("L2 hit (L1 off)", {**base, "MEMBANK_CACHE__L1_MAX_ENTRIES": "0"}),
            ("miss (cache off: embed + store)", {**base, "MEMBANK_CACHE__ENABLED": "false"}),
        ):
            with local_server(data, env, quiet=True) as server:
                httpx.post(
                    f"{server.url}/v1/search",
                    content=body,
                    headers={"content-type": "application/json", **bench_auth()},
                    timeout=30,
                ).raise_for_status()
                runs.append(CachedRun(name, *_wrk(server.url, body, plan)))
        (data / "payload.json").write_bytes(payload)
        ceiling = _ceiling(data / "payload.json", body, plan)
    for run in runs:
        run.of_ceiling = round(run.requests_per_second / ceiling.requests_per_second, 3)
    ceiling.of_ceiling = 1.0
    return [*runs, ceiling]


def _ceiling(payload: Path, body: bytes, plan: CachePlan) -> CachedRun:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "membank_cli._ceiling:create_app",
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env={**os.environ, "MEMBANK_CEILING_PAYLOAD": str(payload)},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                httpx.post(
                    f"{url}/v1/search",
                    content=body,
                    headers={"content-type": "application/json"},
                    timeout=1,
                )
                break
            except httpx.TransportError:
                time.sleep(0.1)
        return CachedRun("ceiling: bare Litestar, same payload", *_wrk(url, body, plan))
    finally:
        proc.terminate()
        proc.wait(30)
