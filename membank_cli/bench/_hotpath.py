"""What ``membank bench hotpath`` does: membank's cached search against the ceiling.

Two servers on loopback ports, one after the other driven by the same generator
with the same settings: membank with security on (admin key, lockout check, the
per-key rate limiter in Redis, audit, metrics) answering an L1 cache hit, and a
bare Litestar route answering the same bytes (``membank_cli._ceiling``). The ratio
of their rates is what the framework leaves membank. Each server's CPU share
during its run (and the generator's) says which one was the limit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from membank_cli._local_server import bench_auth, bench_security, free_port, local_server
from membank_cli.bench._load import Load, LoadResult, python_load, wrk_available, wrk_load
from membank_server.domain.errors import MembankError

__all__ = ["HotPlan", "HotReport", "HotRun", "run_hotpath"]

_BODY = {"user_id": "user-7", "query": "what do I like to eat?", "limit": 10}


@dataclass(frozen=True)
class HotPlan:
    #: The Redis of the rate limiter and the cache generations (on this machine).
    redis_url: str
    seconds: float = 10.0
    connections: int = 32
    #: ``auto`` (wrk if on PATH, else Python), ``wrk`` or ``python``.
    generator: str = "auto"
    #: Alternating runs of each server; the figures are each server's median run.
    rounds: int = 1


@dataclass
class HotRun:
    server: str
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    #: CPU seconds per wall second of the server (1.0 = one core busy) and of the generator.
    server_cpu: float
    generator_cpu: float


@dataclass
class HotReport:
    generator: str
    seconds: float
    connections: int
    runs: list[HotRun] = field(default_factory=list)
    of_ceiling: float = 0.0


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children so far."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
        for task in Path(f"/proc/{current}/task").glob("*"):
            children = task / "children"
            if children.exists():
                todo.extend(int(c) for c in children.read_text().split())
    return total


def _measure(name: str, pid: int, load: Load, drive: Callable[[Load], LoadResult]) -> HotRun:
    cpu, started = _cpu_seconds(pid), time.perf_counter()
    result = drive(load)
    share = (_cpu_seconds(pid) - cpu) / (time.perf_counter() - started)
    return HotRun(name, result.requests_per_second, round(result.p50_ms, 3),
                  round(result.p99_ms, 3), round(share, 3), result.generator_cpu)  # fmt: skip


@contextmanager
def _ceiling(payload: Path) -> Iterator[tuple[str, int]]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "membank_cli._ceiling:create_app",
         "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level",
         "warning", "--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, "MEMBANK_CEILING_PAYLOAD": str(payload)},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                httpx.post(f"{url}/v1/search", json=_BODY, timeout=1).raise_for_status()
                break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise MembankError("the bare Litestar server did not start")
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(30)


def _seed(http: httpx.Client) -> bytes:
    """Twenty memories of the searched user, one search to fill the cache; its answer."""
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((20, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    memories = [
        {"user_id": "user-7", "content": f"fact {i}", "vector": v}
        for i, v in enumerate(np.round(vectors, 5).tolist())
    ]
    http.delete("/v1/cache").raise_for_status()  # the Redis may hold an earlier run's
    http.post("/v1/memories/batch", json={"memories": memories}).raise_for_status()
    first = http.post("/v1/search", json=_BODY)
    first.raise_for_status()
    again = http.post("/v1/search", json=_BODY)
    if again.headers.get("x-membank-cache") != "hit":
        raise MembankError("the second search was not a cache hit: is the cache on?")
    return again.content


def run_hotpath(plan: HotPlan) -> HotReport:
    """Start both servers, drive each ``rounds`` times alternately, keep the medians."""
    use_wrk = plan.generator == "wrk" or (plan.generator == "auto" and wrk_available())
    if use_wrk and not wrk_available():
        raise MembankError("--generator wrk, but wrk is not on PATH (apt-get install wrk)")
    drive = wrk_load if use_wrk else python_load
    report = HotReport("wrk -t1" if use_wrk else "python (asyncio)", plan.seconds,
                       plan.connections)  # fmt: skip
    body = json.dumps(_BODY).encode()
    env = {**bench_security(), "MEMBANK_CACHE__REDIS_URL": plan.redis_url}
    with tempfile.TemporaryDirectory(prefix="membank-bench-hotpath-") as tmp:
        data = Path(tmp)
        with local_server(data, env, quiet=True) as server:
            with httpx.Client(base_url=server.url, timeout=60, headers=bench_auth()) as http:
                (data / "payload.json").write_bytes(_seed(http))
            with _ceiling(data / "payload.json") as (ceiling_url, ceiling_pid):
                runs: dict[str, list[HotRun]] = {"ceiling": [], "membank": []}
                for _ in range(plan.rounds):
                    for name, url, pid, headers in (
                        ("ceiling", ceiling_url, ceiling_pid, {}),
                        ("membank", server.url, server.pid, bench_auth()),
                    ):
                        load = Load(url, "/v1/search", body, headers, plan.seconds,
                                    plan.connections)  # fmt: skip
                        runs[name].append(_measure(name, pid, load, drive))
    for name in ("ceiling", "membank"):
        ordered = sorted(runs[name], key=lambda r: r.requests_per_second)
        report.runs.append(ordered[len(ordered) // 2])
    ceiling, membank = report.runs
    report.of_ceiling = round(membank.requests_per_second / ceiling.requests_per_second, 3)
    return report
