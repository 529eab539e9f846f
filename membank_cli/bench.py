"""``membank bench``: ingest and search figures over HTTP, against a server it starts.

Black-box: it talks HTTP to a ``membank serve`` process on a free loopback port
with a fresh data folder (or to ``--url``), so the figures include the server,
the JSON codec and the store, as a client sees them. Request bodies are made
before the clock starts, so the client's own encoding is not counted.
"""

from __future__ import annotations

import asyncio
import os
import random
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import msgspec
import numpy as np
import typer
from rich.progress import Progress

from membank_cli._local import local_server, rss_bytes
from membank_cli.bench_cache import bench_auth, bench_security, run_cached
from membank_cli.output import console, fail, print_json, table, warning

__all__ = ["bench"]

_WORDS = [
    "coffee",
    "tea",
    "hiking",
    "Lisbon",
    "sister",
    "dentist",
    "Tuesday",
    "peanuts",
    "allergy",
    "guitar",
    "piano",
    "Toyota",
    "marathon",
    "vegetarian",
    "sushi",
    "Berlin",
    "daughter",
    "birthday",
    "March",
    "office",
    "remote",
    "python",
    "garden",
    "cat",
    "dog",
    "swimming",
    "yoga",
    "meeting",
    "flight",
    "Tokyo",
    "budget",
    "novel",
    "jazz",
    "cycling",
    "sourdough",
]


@dataclass
class Phase:
    phase: str
    count: int
    seconds: float
    per_second: float
    p50_ms: float | None = None
    p99_ms: float | None = None


def _rss_mib(pid: int | None) -> float | None:
    rss = rss_bytes(pid) if pid is not None else None
    return rss / 1024 / 1024 if rss is not None else None


def _vectors(rng: np.random.Generator, n: int, dim: int) -> list[list[float]]:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return np.round(v, 6).tolist()  # type: ignore[no-any-return]


def _sentence(rng: random.Random, i: int) -> str:
    return f"memory {i}: " + " ".join(rng.choices(_WORDS, k=rng.randint(5, 20)))


def _pct(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)


async def _drive(
    url: str,
    method: str,
    path: str,
    bodies: Sequence[bytes],
    concurrency: int,
    progress: Progress,
    label: str,
) -> tuple[float, list[float]]:
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


async def _run(
    url: str,
    n: int,
    users: int,
    embed_n: int,
    searches: int,
    text_searches: int,
    concurrency: int,
    dim: int,
    seed: int,
) -> list[Phase]:
    rng, prng = np.random.default_rng(seed), random.Random(seed)
    enc = msgspec.json.encode
    phases: list[Phase] = []
    batch = 1000
    with Progress(console=console, transient=True) as progress:
        bodies = [
            enc(
                {
                    "memories": [
                        {
                            "user_id": f"user-{prng.randrange(users)}",
                            "content": _sentence(prng, start + j),
                            "vector": vec,
                        }
                        for j, vec in enumerate(_vectors(rng, min(batch, n - start), dim))
                    ]
                }
            )
            for start in range(0, n, batch)
        ]
        took, _ = await _drive(
            url, "POST", "/v1/memories/batch", bodies, 2, progress, f"ingest {n:,} with vectors"
        )
        phases.append(Phase("ingest, vectors", n, took, n / took))
        bodies = [
            enc(
                {
                    "memories": [
                        {
                            "user_id": f"user-{prng.randrange(users)}",
                            "content": _sentence(prng, n + start + j),
                        }
                        for j in range(min(100, embed_n - start))
                    ]
                }
            )
            for start in range(0, embed_n, 100)
        ]
        if bodies:
            took, _ = await _drive(
                url,
                "POST",
                "/v1/memories/batch",
                bodies,
                2,
                progress,
                f"ingest {embed_n:,} with embedding",
            )
            phases.append(Phase("ingest, embed", embed_n, took, embed_n / took))
        for label, bodies in (
            (
                "search, vector",
                [
                    enc({"user_id": f"user-{prng.randrange(users)}", "vector": v, "limit": 10})
                    for v in _vectors(rng, searches, dim)
                ],
            ),
            (
                "search, text",
                [
                    enc(
                        {
                            "user_id": f"user-{prng.randrange(users)}",
                            "query": " ".join(prng.choices(_WORDS, k=6)),
                            "limit": 10,
                        }
                    )
                    for _ in range(text_searches)
                ],
            ),
        ):
            if not bodies:
                continue
            took, lat = await _drive(
                url, "POST", "/v1/search", bodies, concurrency, progress, label
            )
            phases.append(
                Phase(
                    f"{label} (c={concurrency})",
                    len(bodies),
                    took,
                    len(bodies) / took,
                    _pct(lat, 0.5),
                    _pct(lat, 0.99),
                )
            )
    return phases


_BACKENDS = ("edge", "qdrant", "pgvector", "hybrid")


def _backend_env(
    backend: str, tmp: Path, pg_dsn: str | None, qdrant_url: str | None
) -> dict[str, str]:
    """Settings that put a fresh bench server on one backend (own schema / collection)."""
    run = f"bench_{os.getpid()}_{backend}"
    env = {"MEMBANK_STORAGE__BACKEND": backend}
    if backend in ("pgvector", "hybrid"):
        if not pg_dsn:
            fail(f"--backend {backend} needs --pg-dsn (or MEMBANK_STORAGE__POSTGRES__DSN)")
        env |= {"MEMBANK_STORAGE__POSTGRES__DSN": pg_dsn, "MEMBANK_STORAGE__POSTGRES__SCHEMA": run}
    if backend in ("qdrant", "hybrid"):
        where = (
            {"MEMBANK_STORAGE__QDRANT__URL": qdrant_url}
            if qdrant_url
            else {"MEMBANK_STORAGE__QDRANT__PATH": str(tmp / "qdrant-local")}
        )
        env |= where | {"MEMBANK_STORAGE__QDRANT__COLLECTION": run}
    if backend == "hybrid":
        env |= {"MEMBANK_STORAGE__HYBRID__SECONDARY": "qdrant" if qdrant_url else "edge"}
    return env


def _render(runs: list[tuple[str, float | None, list[Phase]]], n: int, users: int) -> None:
    table(
        f"membank bench: {n:,} memories, {users:,} users",
        ["backend", "phase", "count", "seconds", "per second", "p50 ms", "p99 ms", "RSS MiB"],
        [
            (
                backend,
                p.phase,
                f"{p.count:,}",
                f"{p.seconds:.2f}",
                f"{p.per_second:,.0f}",
                p.p50_ms if p.p50_ms is not None else "",
                p.p99_ms if p.p99_ms is not None else "",
                f"{rss:,.0f}" if rss and i == 0 else "",
            )
            for backend, rss, phases in runs
            for i, p in enumerate(phases)
        ],
    )


def bench(
    n: int = typer.Option(100_000, "--n", help="Memories ingested with client vectors."),
    users: int = typer.Option(1_000, help="Distinct users the memories spread over."),
    embed_n: int = typer.Option(2_000, "--embed-n", help="Memories ingested with embedding."),
    searches: int = typer.Option(5_000, help="Searches with client vectors."),
    text_searches: int = typer.Option(500, help="Searches with a text query."),
    concurrency: int = typer.Option(4, help="Requests in flight during searches."),
    dim: int = typer.Option(384, help="Vector size of the server's embedder."),
    backend: list[str] = typer.Option(
        ["edge"], "--backend", "-b", help="edge, qdrant, pgvector or hybrid; repeat to compare."
    ),
    pg_dsn: str = typer.Option(
        None, envvar="MEMBANK_STORAGE__POSTGRES__DSN", help="PostgreSQL for pgvector/hybrid."
    ),
    qdrant_url: str = typer.Option(
        None, help="A Qdrant server for qdrant/hybrid (else qdrant-client local mode)."
    ),
    url: str = typer.Option(None, help="Bench a running server instead of starting one."),
    seed: int = typer.Option(7, help="Random seed."),
    cached: bool = typer.Option(
        False, "--cached", help="Cached search: L1 hits, L2 hits, misses vs bare Litestar (wrk)."
    ),
    redis_url: str = typer.Option(
        None, envvar="MEMBANK_CACHE__REDIS_URL", help="Redis for the L2 of --cached."
    ),
    seconds: int = typer.Option(10, help="Seconds per wrk run (--cached)."),
    as_json: bool = typer.Option(False, "--json", help="Print figures as JSON."),
) -> None:
    """Measure ingest rate and search latency (p50/p99) over HTTP at N memories, per backend."""
    if cached:
        if not redis_url:
            fail("--cached needs --redis-url (or MEMBANK_CACHE__REDIS_URL) for its L2 run")
        if not redis_url.startswith(("redis://127.", "redis://localhost")):
            fail("bench only targets services on this machine")
        cached_runs = run_cached(redis_url, seconds, 32, users)
        if as_json:
            print_json([asdict(r) for r in cached_runs])
        else:
            table(
                f"membank bench --cached: wrk -t1 -c32 -d{seconds}s, one uvicorn worker",
                ["run", "requests/s", "p50 ms", "p99 ms", "of ceiling"],
                [
                    (
                        r.name,
                        f"{r.requests_per_second:,.0f}",
                        f"{r.p50_ms:.2f}",
                        f"{r.p99_ms:.2f}",
                        f"{r.of_ceiling:.2f}",
                    )
                    for r in cached_runs
                ],
            )
        return
    if url and not url.startswith(("http://127.", "http://localhost", "http://[::1]")):
        fail("bench only targets a server on this machine (127.0.0.1/localhost)")
    unknown = sorted(set(backend) - set(_BACKENDS))
    if unknown:
        fail(f"unknown backend {unknown[0]!r}: choose from {', '.join(_BACKENDS)}")
    if "qdrant" in backend and not qdrant_url:
        warning(
            "no --qdrant-url: the qdrant backend runs on qdrant-client's local mode, which is "
            "brute force in the server's event loop; its figures say nothing about a Qdrant server"
        )

    def measure(target: str) -> list[Phase]:
        return asyncio.run(
            _run(target, n, users, embed_n, searches, text_searches, concurrency, dim, seed)
        )

    runs: list[tuple[str, float | None, list[Phase]]] = []
    if url:
        runs.append(("(running server)", None, measure(url)))
    else:
        for name in backend:
            with tempfile.TemporaryDirectory(prefix="membank-bench-") as tmp:
                env = _backend_env(name, Path(tmp), pg_dsn, qdrant_url)
                with local_server(Path(tmp), {**bench_security(), **env}) as (target, pid):
                    phases = measure(target)
                    runs.append((name, _rss_mib(pid), phases))
    if as_json:
        print_json(
            {
                "n": n,
                "users": users,
                "runs": [
                    {"backend": b, "server_rss_mib": rss, "phases": [asdict(p) for p in ph]}
                    for b, rss, ph in runs
                ],
            }
        )
    else:
        _render(runs, n, users)
