"""``membank capacity calibrate``: measure RSS and disk per memory on a server it starts.

Starts ``membank serve`` on a fresh data folder (or a fresh PostgreSQL schema
with ``--backend pgvector``), loads memories with client-supplied vectors in
batches of 1,000 (no embedding, so the load is fast and the figures are the
store's), and at each checkpoint records the server's resident set size
(``VmRSS``), its disk (allocated blocks under the data folder, what ``du``
counts; for pgvector the schema's tables, indexes and TOAST) and, for
pgvector, the HNSW index size that must stay in memory for fast search.
The figures in :mod:`membank_cli.capacity.model` came from this command.
"""

from __future__ import annotations

import asyncio
import os
import random
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec
import numpy as np

from membank_cli._local_server import bench_auth, bench_security, local_server, rss_bytes
from membank_server.domain.errors import MembankError

__all__ = [
    "Point",
    "as_rows",
    "calibrate_run",
    "data_dir_bytes",
    "load",
    "memory_body",
    "pg_drop",
    "pg_sizes",
    "rss_file_bytes",
]

_TOPICS = ["food", "travel", "family", "work", "health", "music", "sport", "money", "books"]
_PHRASES = [
    "prefers oat milk in coffee",
    "allergic to peanuts",
    "sister lives in Lisbon",
    "plays jazz piano on Tuesdays",
    "training for the Berlin marathon",
    "vegetarian since March",
    "works remote from the garden office",
    "flies to Tokyo for the budget meeting",
    "reads a novel a week",
    "bakes sourdough on Sundays",
    "has a cat called Miso and a dog",
    "cycles to the dentist",
]


@dataclass(frozen=True)
class Point:
    """One checkpoint: what the server used at ``memories`` live memories."""

    memories: int
    rss_bytes: int
    disk_bytes: int
    #: The file-backed part of the RSS (mmap'd segments): page cache the kernel can drop.
    rss_file_bytes: int
    #: pgvector only: the HNSW index, the part PostgreSQL must keep in memory.
    index_bytes: int | None = None


def memory_body(rng: random.Random, i: int, users: int, vector: Sequence[float]) -> dict[str, Any]:
    """A realistic memory: a sentence of 60-200 characters and three metadata keys."""
    phrases = rng.sample(_PHRASES, k=rng.randint(2, 6))
    return {
        "user_id": f"user-{rng.randrange(users)}",
        "agent_id": f"agent-{rng.randrange(8)}",
        "content": f"#{i}: " + "; ".join(phrases),
        "metadata": {
            "topic": rng.choice(_TOPICS),
            "source": "chat",
            "confidence": round(rng.random(), 2),
        },
        "vector": vector,
    }


async def load(
    url: str,
    headers: dict[str, str],
    start: int,
    count: int,
    *,
    users: int = 500,
    dim: int = 384,
    seed: int = 7,
    batch: int = 1000,
    sink: Callable[[int, list[str], list[list[float]]], None] | None = None,
) -> None:
    """POST ``count`` memories numbered from ``start`` to ``/v1/memories/batch``, two at a
    time; ``sink`` sees each batch's first number, users and vectors (to score searches)."""
    rng = random.Random(seed + start)
    vrng = np.random.default_rng(seed + start)
    enc = msgspec.json.encode

    def body(first: int, n: int) -> bytes:
        v = vrng.standard_normal((n, dim)).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        vectors = np.round(v, 6).tolist()
        memories = [memory_body(rng, first + j, users, vectors[j]) for j in range(n)]
        if sink is not None:
            sink(first, [m["user_id"] for m in memories], vectors)
        return enc({"memories": memories})

    # Made as the workers ask for them: 100k memories of bodies would be half a GiB.
    bodies = (
        body(first, min(batch, start + count - first))
        for first in range(start, start + count, batch)
    )
    hdrs = {"content-type": "application/json", **headers}
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:

        async def worker() -> None:
            for b in bodies:
                r = await client.post("/v1/memories/batch", content=b, headers=hdrs)
                if r.status_code >= 300:
                    raise RuntimeError(f"batch answered {r.status_code}: {r.text[:300]}")

        # Two in flight: the server's writer groups them, and the client never waits idle.
        await asyncio.gather(worker(), worker())


def rss_file_bytes(pid: int) -> int:
    """The file-backed part of a process's RSS (``RssFile``: mapped pages of files)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1]) * 1024
    return 0


def data_dir_bytes(path: Path) -> int:
    """Allocated bytes under ``path``, as ``du`` counts them (sparse files count what is used)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except FileNotFoundError:
                continue  # a temporary file the server removed while we walked
    return total


async def pg_sizes(dsn: str, schema: str) -> tuple[int, int]:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(dsn)
    try:
        total = await conn.fetchval(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = $1 AND c.relkind IN ('r', 'm')",
            schema,
        )
        hnsw = await conn.fetchval(
            "SELECT coalesce(sum(pg_relation_size(c.oid)), 0) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_am a ON a.oid = c.relam"
            " WHERE n.nspname = $1 AND a.amname = 'hnsw'",
            schema,
        )
        return int(total), int(hnsw)
    finally:
        await conn.close()


async def pg_drop(dsn: str, schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def calibrate_run(
    backend: str,
    checkpoints: Sequence[int],
    *,
    users: int = 500,
    dim: int = 384,
    pg_dsn: str | None = None,
    settle_seconds: float = 3.0,
) -> list[Point]:
    """Start a fresh server on ``backend`` and measure it at 0 and at each checkpoint."""
    if backend not in ("edge", "pgvector"):
        raise MembankError(
            "calibrate measures edge or pgvector (no Qdrant server runs on this machine)"
        )
    if backend == "pgvector" and not pg_dsn:
        raise MembankError("--backend pgvector needs --pg-dsn (or MEMBANK_STORAGE__POSTGRES__DSN)")
    schema = f"calibrate_{os.getpid()}"
    env = {**bench_security(), "MEMBANK_STORAGE__BACKEND": backend}
    if backend == "pgvector" and pg_dsn:
        env |= {
            "MEMBANK_STORAGE__POSTGRES__DSN": pg_dsn,
            "MEMBANK_STORAGE__POSTGRES__SCHEMA": schema,
        }
    points: list[Point] = []
    with (
        tempfile.TemporaryDirectory(prefix="membank-calibrate-") as tmp,
        local_server(Path(tmp), env) as server,
    ):
        done = 0
        for target in [0, *sorted(checkpoints)]:
            if target > done:
                await load(server.url, bench_auth(), done, target - done, users=users, dim=dim)
                done = target
            # Let the writer's last group flush and the allocator settle before reading.
            await asyncio.sleep(settle_seconds)
            rss, rss_file = rss_bytes(server.pid) or 0, rss_file_bytes(server.pid)
            if backend == "pgvector" and pg_dsn:
                disk, index = await pg_sizes(pg_dsn, schema)
                points.append(Point(target, rss, disk, rss_file, index))
            else:
                points.append(Point(target, rss, data_dir_bytes(Path(tmp)), rss_file))
    if backend == "pgvector" and pg_dsn:
        await pg_drop(pg_dsn, schema)
    return points


def as_rows(points: Sequence[Point]) -> list[dict[str, Any]]:
    base = points[0]
    rows = []
    for p in points:
        grown = p.memories - base.memories
        rows.append(
            {
                **asdict(p),
                "rss_per_memory": (p.rss_bytes - base.rss_bytes) / grown if grown else None,
                "disk_per_memory": (p.disk_bytes - base.disk_bytes) / grown if grown else None,
            }
        )
    return rows
