"""What ``membank bench ingest`` measures: the embedder alone, then a server embedding.

The raw figures come from the configured embedder in this process, with no server
running: texts in calls of the batcher's size (``jobs.batcher.max_texts``), and
queries in calls of ``clients`` texts (what concurrent searches hand it at best).
The server figures are black-box HTTP against a server on a loopback port, every
text embedded by the server: synchronous single writes, synchronous batches, the
asynchronous pipeline (jobs submitted, then followed until the last is done), and
concurrent searches by text (distinct queries: no cache hits).
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from dataclasses import dataclass

import httpx
import msgspec
from rich.console import Console
from rich.progress import Progress

from membank_cli._local_server import bench_auth
from membank_cli.bench._http import Phase, drive, pct
from membank_server.domain.ports import Embedder

__all__ = ["IngestPlan", "Scaling", "measure_embedder", "measure_server", "texts"]

_WHO = ["my sister", "my manager", "the dentist", "my son", "a neighbour", "my partner"]
_DID = ["recommended", "booked", "cancelled", "cooked", "repaired", "borrowed", "painted"]
_WHAT = ["a sourdough loaf", "the flight to Lisbon", "a jazz concert", "the blue Toyota",
         "a yoga class", "the garden fence", "a marathon plan", "peanut-free cookies"]  # fmt: skip
_WHEN = ["on Tuesday", "last March", "before the meeting", "after work", "at the weekend"]


def texts(n: int, seed: int, tag: str) -> list[str]:
    """``n`` distinct sentences like the facts agents store (12 to 20 words)."""
    rng = random.Random(f"{seed}-{tag}")
    return [
        f"{rng.choice(_WHO).capitalize()} {rng.choice(_DID)} {rng.choice(_WHAT)} "
        f"{rng.choice(_WHEN)}, and said it was {rng.choice(['great', 'late', 'costly'])} "
        f"(note {tag}-{i})."
        for i in range(n)
    ]


@dataclass(frozen=True)
class IngestPlan:
    #: Texts per phase (sync batch, async pipeline, raw embedder).
    n: int = 2_000
    #: Texts written one request each (slower: fewer).
    single: int = 400
    batch: int = 100
    job: int = 1_000
    users: int = 50
    #: Requests in flight for single writes and searches.
    clients: int = 8
    queries: int = 800
    #: Texts per raw embedder call (the batcher's max_texts).
    raw_batch: int = 256
    seed: int = 7


@dataclass
class Scaling:
    """What the async phase saw in /metrics: the pool's size and the queue's depth."""

    max_workers: int = 0
    max_depth: int = 0
    end_workers: int = 0
    #: Texts per embedder call the batcher made, on average, per lane (small, bulk).
    small_batch: float = 0.0
    bulk_batch: float = 0.0


async def measure_embedder(embedder: Embedder, plan: IngestPlan) -> list[Phase]:
    """The embedder alone: ingest-sized calls, then query calls of ``clients`` texts."""
    await embedder.start()
    try:
        await embedder.embed(texts(64, plan.seed, "warm"))
        corpus = texts(plan.n, plan.seed, "raw")
        started = time.perf_counter()
        for i in range(0, len(corpus), plan.raw_batch):
            await embedder.embed(corpus[i : i + plan.raw_batch])
        took = time.perf_counter() - started
        queries = [f"what did {t.lower()}" for t in texts(plan.queries, plan.seed, "rawq")]
        started = time.perf_counter()
        for i in range(0, len(queries), plan.clients):
            await embedder.embed(queries[i : i + plan.clients])
        q_took = time.perf_counter() - started
    finally:
        await embedder.aclose()
    return [
        Phase(f"raw embedder, calls of {plan.raw_batch}", plan.n, took, plan.n / took),
        Phase(
            f"raw embedder, queries in calls of {plan.clients}",
            len(queries),
            q_took,
            len(queries) / q_took,
        ),
    ]


def _bodies(plan: IngestPlan, tag: str, n: int, size: int) -> list[bytes]:
    items = [
        {"user_id": f"bench-{i % plan.users}", "content": t}
        for i, t in enumerate(texts(n, plan.seed, tag))
    ]
    return [msgspec.json.encode({"memories": items[i : i + size]}) for i in range(0, n, size)]


def _value(text: str, name: str, label: str) -> float:
    found = re.search(rf"^{name}\{{{label}\}} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def _gauge(text: str, name: str) -> int:
    return int(_value(text, name, 'kind="embed_store"'))


def _mean_batch(text: str, lane: str) -> float:
    label = f'lane="{lane}"'
    count = _value(text, "membank_embed_batch_texts_count", label)
    return _value(text, "membank_embed_batch_texts_sum", label) / count if count else 0.0


async def _pipeline(url: str, plan: IngestPlan, scaling: Scaling) -> Phase:
    bodies = _bodies(plan, "async", plan.n, plan.job)
    headers = {"content-type": "application/json", **bench_auth()}
    async with httpx.AsyncClient(base_url=url, timeout=120, headers=headers) as http:
        started = time.perf_counter()
        jobs = []
        for body in bodies:
            r = await http.post("/v1/memories/batch", params={"mode": "async"}, content=body)
            if r.status_code != 202:
                raise RuntimeError(f"an async batch answered {r.status_code}: {r.text[:300]}")
            jobs.append(r.json()["id"])
        pending = set(jobs)
        while pending:
            metrics = (await http.get("/metrics")).text
            scaling.max_workers = max(scaling.max_workers, _gauge(metrics, "membank_job_workers"))
            depth = _gauge(metrics, "membank_job_queue_depth")
            scaling.max_depth = max(scaling.max_depth, depth)
            for job_id in list(pending):
                job = (await http.get(f"/v1/jobs/{job_id}", params={"item_limit": 1})).json()
                if job["status"] != "running" and job["status"] != "queued":
                    if job["dead"]:
                        raise RuntimeError(f"job {job_id} ended with {job['dead']} dead items")
                    pending.discard(job_id)
            await asyncio.sleep(0.05)
        took = time.perf_counter() - started
        await asyncio.sleep(3)  # idle: the pool shrinks back
        scaling.end_workers = _gauge((await http.get("/metrics")).text, "membank_job_workers")
    return Phase(f"async pipeline, jobs of {plan.job}", plan.n, took, plan.n / took)


async def measure_server(
    url: str, plan: IngestPlan, console: Console
) -> tuple[list[Phase], Scaling]:
    """Single writes, batches, the pipeline, then concurrent text searches."""
    enc = msgspec.json.encode
    phases: list[Phase] = []
    scaling = Scaling()
    with Progress(console=console, transient=True) as progress:
        warm = [enc({"user_id": "bench-warm", "content": t}) for t in texts(16, plan.seed, "w")]
        await drive(url, "POST", "/v1/memories", warm, 4, progress, "warm up")
        single = [
            enc({"user_id": f"bench-{i % plan.users}", "content": t})
            for i, t in enumerate(texts(plan.single, plan.seed, "single"))
        ]
        took, lat = await drive(url, "POST", "/v1/memories", single, plan.clients, progress,
                                f"{plan.single:,} single writes")  # fmt: skip
        phases.append(
            Phase(f"sync single writes (c={plan.clients})", plan.single, took,
                  plan.single / took, pct(lat, 0.5), pct(lat, 0.99))
        )  # fmt: skip
        batches = _bodies(plan, "batch", plan.n, plan.batch)
        took, lat = await drive(url, "POST", "/v1/memories/batch", batches, 2, progress,
                                f"{plan.n:,} in batches")  # fmt: skip
        phases.append(Phase(f"sync batches of {plan.batch} (c=2)", plan.n, took, plan.n / took))
        phases.append(await _pipeline(url, plan, scaling))
        queries = [
            enc({"user_id": f"bench-{i % plan.users}", "query": f"who {t.lower()}", "limit": 10})
            for i, t in enumerate(texts(plan.queries, plan.seed, "query"))
        ]
        took, lat = await drive(url, "POST", "/v1/search", queries, plan.clients, progress,
                                f"{plan.queries:,} searches")  # fmt: skip
        phases.append(
            Phase(f"searches by text (c={plan.clients})", plan.queries, took,
                  plan.queries / took, pct(lat, 0.5), pct(lat, 0.99))
        )  # fmt: skip
    async with httpx.AsyncClient(base_url=url, timeout=30, headers=bench_auth()) as http:
        metrics = (await http.get("/metrics")).text
    scaling.small_batch = _mean_batch(metrics, "small")
    scaling.bulk_batch = _mean_batch(metrics, "bulk")
    return phases, scaling
