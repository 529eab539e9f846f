"""What ``membank bench memory`` does for one vector layout of the embedded store.

A server of our own on a fresh folder, with the layout's settings
(``storage.edge.quantization``, ``original_vectors``): its RSS empty, then after ``n``
memories with client vectors (``capacity.calibrate.load``); the server stopped and
``membank collection optimize`` run (what builds HNSW and the int8 vectors); the
server started again on the optimized folder, its RSS and disk, then searches by
vector, each scored against brute-force numpy over the user's own vectors (recall@10,
ties counted), and the RSS after them. The vectors of ``recall_users`` users are kept
client-side for that, so the client's memory stays bounded at a million memories.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
import numpy as np

from membank_cli._local_server import bench_auth, bench_security, local_server, rss_bytes
from membank_cli.bench._http import pct
from membank_cli.capacity.calibrate import data_dir_bytes, load, rss_file_bytes
from membank_server.domain.errors import MembankError

__all__ = ["LAYOUTS", "LayoutReport", "MemoryPlan", "Sample", "measure_layout"]

#: The layouts compared: storage.edge.quantization and storage.edge.original_vectors.
LAYOUTS: dict[str, dict[str, str]] = {
    "float32": {"QUANTIZATION": "none", "ORIGINAL_VECTORS": "ram"},
    "int8": {"QUANTIZATION": "scalar", "ORIGINAL_VECTORS": "ram"},
    "int8-disk": {"QUANTIZATION": "scalar", "ORIGINAL_VECTORS": "disk"},
    "float32-disk": {"QUANTIZATION": "none", "ORIGINAL_VECTORS": "disk"},
}


@dataclass(frozen=True)
class MemoryPlan:
    """What ``membank bench memory`` measures, from its options."""

    n: int = 100_000
    users: int = 500
    dim: int = 384
    queries: int = 500
    #: Users whose vectors the client keeps to score searches against exact.
    recall_users: int = 100
    layouts: tuple[str, ...] = ("float32", "int8", "int8-disk")
    settle_seconds: float = 3.0
    seed: int = 7


@dataclass(frozen=True)
class Sample:
    """The server at one moment: resident memory (of it file-backed pages) and disk."""

    rss_bytes: int
    rss_file_bytes: int
    disk_bytes: int


@dataclass
class LayoutReport:
    layout: str
    memories: int
    samples: dict[str, Sample] = field(default_factory=dict)
    optimize_seconds: float = 0.0
    #: Segments holding int8 vectors after the optimize (0: none were built).
    quantized_segments: int = 0
    recall_at_10: float = 0.0
    search_p50_ms: float = 0.0
    search_p99_ms: float = 0.0

    def per_memory(self, phase: str) -> dict[str, float]:
        """Bytes a memory adds at ``phase`` over the empty server."""
        base, at = self.samples["empty"], self.samples[phase]
        return {
            "rss": (at.rss_bytes - base.rss_bytes) / self.memories,
            "rss_anon": (
                (at.rss_bytes - at.rss_file_bytes) - (base.rss_bytes - base.rss_file_bytes)
            )
            / self.memories,
            "disk": (at.disk_bytes - base.disk_bytes) / self.memories,
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "layout": self.layout,
            "memories": self.memories,
            "optimize_seconds": round(self.optimize_seconds, 1),
            "quantized_segments": self.quantized_segments,
            "recall_at_10": round(self.recall_at_10, 4),
            "search_p50_ms": self.search_p50_ms,
            "search_p99_ms": self.search_p99_ms,
            "samples": {k: asdict(v) for k, v in self.samples.items()},
            "per_memory_bytes": {p: self.per_memory(p) for p in self.samples if p != "empty"},
        }


class _Kept:
    """The vectors of the sampled users, by memory number."""

    def __init__(self, users: set[str]) -> None:
        self.users = users
        self.by_user: dict[str, dict[int, list[float]]] = {u: {} for u in users}

    def __call__(self, first: int, users: list[str], vectors: list[list[float]]) -> None:
        for j, (user, vector) in enumerate(zip(users, vectors, strict=True)):
            if user in self.users:
                self.by_user[user][first + j] = vector


def _sample(pid: int, folder: Path) -> Sample:
    return Sample(rss_bytes(pid) or 0, rss_file_bytes(pid), data_dir_bytes(folder))


def _env(layout: str) -> dict[str, str]:
    if layout not in LAYOUTS:
        raise MembankError(f"unknown layout {layout!r}: choose from {', '.join(LAYOUTS)}")
    return {
        **bench_security(),
        "MEMBANK_STORAGE__BACKEND": "edge",
        **{f"MEMBANK_STORAGE__EDGE__{k}": v for k, v in LAYOUTS[layout].items()},
    }


def _optimize(folder: Path, env: dict[str, str]) -> tuple[float, int]:
    """``membank collection optimize`` on the stopped server's folder: its seconds, and
    the segments that then hold int8 vectors."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "membank_cli", "collection", "optimize"],
        env={**os.environ, **env, "MEMBANK_STORAGE__EDGE__PATH": str(folder / "edge")},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise MembankError(f"collection optimize failed: {done.stderr.strip()[-300:]}")
    return time.perf_counter() - started, len(list(folder.rglob("quantized.data")))


async def _search(url: str, plan: MemoryPlan, kept: _Kept) -> tuple[float, list[float]]:
    """Searches by vector of kept users: mean recall@10 against exact, and latencies."""
    rng = np.random.default_rng(plan.seed + 1)
    users = sorted(u for u, found in kept.by_user.items() if found)
    recalls, latencies = [], []
    headers = {"content-type": "application/json", **bench_auth()}
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        for i in range(plan.queries):
            user = users[i % len(users)]
            numbers = np.fromiter(kept.by_user[user], dtype=np.int64)
            matrix = np.asarray(list(kept.by_user[user].values()), dtype=np.float32)
            q = rng.standard_normal(plan.dim).astype(np.float32)
            q /= np.linalg.norm(q)
            body = msgspec.json.encode({"user_id": user, "vector": q.tolist(), "limit": 10})
            started = time.perf_counter()
            r = await client.post("/v1/search", content=body, headers=headers)
            latencies.append(time.perf_counter() - started)
            if r.status_code != 200:
                raise MembankError(f"/v1/search answered {r.status_code}: {r.text[:300]}")
            exact = dict(zip(numbers.tolist(), (matrix @ q).tolist(), strict=True))
            k = min(10, len(exact))
            tenth = sorted(exact.values(), reverse=True)[k - 1]
            found = [int(h["memory"]["content"][1:].split(":", 1)[0]) for h in r.json()["results"]]
            recalls.append(sum(exact.get(f, -2.0) >= tenth - 1e-5 for f in found) / k)
    return float(np.mean(recalls)), latencies


async def measure_layout(plan: MemoryPlan, layout: str) -> LayoutReport:
    """One layout on a fresh folder (see the module docs)."""
    env = _env(layout)
    report = LayoutReport(layout, plan.n)
    picked = random.Random(plan.seed).sample(range(plan.users), min(plan.recall_users, plan.users))
    kept = _Kept({f"user-{u}" for u in picked})
    with tempfile.TemporaryDirectory(prefix="membank-bench-memory-") as tmp:
        folder = Path(tmp)
        with local_server(folder, env) as server:
            await asyncio.sleep(plan.settle_seconds)
            report.samples["empty"] = _sample(server.pid, folder)
            await load(server.url, bench_auth(), 0, plan.n, users=plan.users, dim=plan.dim,
                       seed=plan.seed, sink=kept)  # fmt: skip
            await asyncio.sleep(plan.settle_seconds)
            report.samples["loaded"] = _sample(server.pid, folder)
        report.optimize_seconds, report.quantized_segments = _optimize(folder, env)
        with local_server(folder, env) as server:
            await asyncio.sleep(plan.settle_seconds)
            report.samples["optimized"] = _sample(server.pid, folder)
            report.recall_at_10, latencies = await _search(server.url, plan, kept)
            report.search_p50_ms, report.search_p99_ms = pct(latencies, 0.5), pct(latencies, 0.99)
            report.samples["searched"] = _sample(server.pid, folder)
    return report
