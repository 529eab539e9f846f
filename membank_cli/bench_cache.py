"""``membank bench --cached``: cached search throughput against the framework ceiling.

Four runs of ``wrk -t1 -c32`` on the same search request, each against a fresh
server process on the same data: L1 hits, L2 hits (L1 off, Redis on), misses
(cache off: embed the query and search the store), and a bare Litestar app that
answers the same payload from a dict (the ceiling).
"""

from __future__ import annotations

import functools
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

from membank_cli._local_server import free_port
from membank_cli.output import fail

__all__ = ["CachedRun", "bench_auth", "bench_security", "run_cached"]


#: Bench servers run with security on, as in production: requests carry an admin key
#: and pass the lockout check and the per-key rate limiter (set far above what a bench
#: sends, so its cost is measured but it never refuses).
@functools.cache
def _bench_key() -> str:
    return "membank-bench-" + secrets.token_urlsafe(24)


def bench_security() -> dict[str, str]:
    return {
        "MEMBANK_SECURITY__ADMIN_KEY": _bench_key(),
        "MEMBANK_SECURITY__RATE_LIMIT__REQUESTS_PER_SECOND": "10000000",
        "MEMBANK_SECURITY__RATE_LIMIT__BURST": "10000000",
    }


def bench_auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {_bench_key()}"}


_LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "%s"
wrk.body = [[%s]]
"""


@dataclass
class CachedRun:
    name: str
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    of_ceiling: float = 0.0


@contextmanager
def _uvicorn(args: list[str], env: dict[str, str], ready_path: str) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, *args],
        env={**os.environ, **env, "MEMBANK_SERVER__PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            if proc.poll() is not None:
                fail(f"a bench server exited with code {proc.returncode}")
            try:
                if httpx.get(url + ready_path, timeout=1).status_code < 500:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


def _membank(env: dict[str, str]) -> AbstractContextManager[str]:
    return _uvicorn(
        ["-m", "membank_cli", "serve"],
        {**env, **bench_security(), "MEMBANK_SERVER__LOG_LEVEL": "warning"},
        "/ready",
    )


def _wrk(url: str, body: bytes, seconds: int, connections: int) -> tuple[float, float, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(_LUA % (bench_auth()["Authorization"], body.decode()))
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            fh.name,
            f"{url}/v1/search",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(fh.name)
    if re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        fail(f"wrk saw error answers:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        assert m is not None, out
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    return rps, pct("50"), pct("99")


def run_cached(redis_url: str, seconds: int, connections: int, users: int) -> list[CachedRun]:
    """Ingest a small set, then measure the four runs; figures relative to the ceiling."""
    if shutil.which("wrk") is None:
        fail("--cached needs wrk (apt-get install wrk): a Python client would measure itself")
    with tempfile.TemporaryDirectory(prefix="membank-bench-cache-") as tmp:
        base = {
            "MEMBANK_STORAGE__EDGE__PATH": f"{tmp}/edge",
            "MEMBANK_CACHE__REDIS_URL": redis_url,
        }
        rng = np.random.default_rng(3)
        with (
            _membank(base) as url,
            httpx.Client(base_url=url, timeout=120, headers=bench_auth()) as http,
        ):
            http.delete("/v1/cache")  # the Redis may hold an earlier run's entries
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
            with _membank(env) as url:
                httpx.post(
                    f"{url}/v1/search",
                    content=body,
                    headers={"content-type": "application/json", **bench_auth()},
                    timeout=30,
                ).raise_for_status()
                runs.append(CachedRun(name, *_wrk(url, body, seconds, connections)))
        Path(tmp, "payload.json").write_bytes(payload)
        ceiling = _ceiling(Path(tmp, "payload.json"), body, seconds, connections)
    for run in runs:
        run.of_ceiling = round(run.requests_per_second / ceiling.requests_per_second, 3)
    ceiling.of_ceiling = 1.0
    return [*runs, ceiling]


def _ceiling(payload: Path, body: bytes, seconds: int, connections: int) -> CachedRun:
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
        return CachedRun(
            "ceiling: bare Litestar, same payload", *_wrk(url, body, seconds, connections)
        )
    finally:
        proc.terminate()
        proc.wait(30)
