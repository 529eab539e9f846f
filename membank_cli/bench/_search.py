"""What ``membank bench search`` does against one server: its plan, bodies and phases.

Black-box: everything goes over HTTP, so the figures include the server, the JSON
codec and the store, as a client sees them. Request bodies are made before the
clock starts, so the client's own encoding is not counted.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np
from rich.console import Console
from rich.progress import Progress

from membank_cli.bench._http import Phase, drive, pct
from membank_cli.bench._scale import BIG_TENANT, big_count, tenants

__all__ = ["BACKENDS", "SearchPlan", "load", "measure", "probe"]

BACKENDS = ("edge", "qdrant", "pgvector", "hybrid")


@dataclass(frozen=True)
class SearchPlan:
    """What ``membank bench search`` measures, from its options."""

    #: Memories ingested with client vectors, then with embedding.
    n: int = 100_000
    embed_n: int = 2_000
    #: Distinct users the memories spread over.
    users: int = 1_000
    #: Searches with a client vector, then with a text query.
    searches: int = 5_000
    text_searches: int = 500
    #: Requests in flight during searches.
    concurrency: int = 4
    #: Vector size of the server's embedder.
    dim: int = 384
    seed: int = 7
    #: The backends a server is started on, one after the other.
    backends: tuple[str, ...] = ("edge",)
    pg_dsn: str | None = None
    qdrant_url: str | None = None
    #: A running server to measure instead of starting one per backend.
    url: str | None = None
    #: Search modes whose text searches are compared (``dense``, ``lexical``, ``hybrid``),
    #: in alternating rounds of the same queries, with the server's cache off.
    modes: tuple[str, ...] = ()
    #: Share of the memories one tenant (``user-big``) holds; its searches are a phase.
    skew: float = 0.0
    #: A folder whose data set is kept for later runs of the same plan (else a fresh one).
    data: Path | None = None
    #: Build the embedded store's HNSW index (``collection optimize``) before serving.
    optimize: bool = False
    #: pgvector: drop the HNSW index before the load, make it after (timed), with
    #: this ``maintenance_work_mem``; None keeps it maintained on every write.
    pg_index_after: str | None = None

    def key(self) -> dict[str, object]:
        """What a kept data set must match to be searched again."""
        return {
            "n": self.n, "embed_n": self.embed_n, "users": self.users, "skew": self.skew,
            "dim": self.dim, "seed": self.seed,
        }  # fmt: skip


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


def _vectors(rng: np.random.Generator, n: int, dim: int) -> list[list[float]]:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return np.round(v, 6).tolist()  # type: ignore[no-any-return]


def _sentence(rng: random.Random, i: int) -> str:
    return f"memory {i}: " + " ".join(rng.choices(_WORDS, k=rng.randint(5, 20)))


async def measure(url: str, plan: SearchPlan, console: Console) -> list[Phase]:
    """Ingest with vectors, ingest with embedding, then search by vector and by text."""
    return await load(url, plan, console) + await probe(url, plan, console)


_CHUNK = 50  # request bodies made at a time: 50,000 memories of 384 floats are ~170 MB


async def load(url: str, plan: SearchPlan, console: Console) -> list[Phase]:
    """Ingest ``n`` memories with client vectors in batches of 1,000, then ``embed_n``
    embedded by the server. Bodies are made a chunk at a time, between timed spans."""
    rng, prng = np.random.default_rng(plan.seed), random.Random(plan.seed)
    n, embed_n, users = plan.n, plan.embed_n, plan.users
    big = big_count(n, plan.skew)
    enc = msgspec.json.encode
    phases: list[Phase] = []
    batch, took = 1000, 0.0
    with Progress(console=console, transient=True) as progress:
        for chunk in range(0, n, batch * _CHUNK):
            bodies = []
            for start in range(chunk, min(n, chunk + batch * _CHUNK), batch):
                size = min(batch, n - start)
                who = tenants(start, size, n, users, big, prng)
                vectors = _vectors(rng, size, plan.dim)
                items = [
                    {"user_id": u, "content": _sentence(prng, start + j), "vector": v}
                    for j, (u, v) in enumerate(zip(who, vectors, strict=True))
                ]
                bodies.append(enc({"memories": items}))
            label = f"ingest {chunk:,}+ of {n:,} with vectors"
            seconds, _ = await drive(url, "POST", "/v1/memories/batch", bodies, 2, progress, label)
            took += seconds
        if n:
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
            took, _ = await drive(
                url,
                "POST",
                "/v1/memories/batch",
                bodies,
                2,
                progress,
                f"ingest {embed_n:,} with embedding",
            )
            phases.append(Phase("ingest, embed", embed_n, took, embed_n / took))
    return phases


async def probe(url: str, plan: SearchPlan, console: Console) -> list[Phase]:
    """Searches by vector on random users (and on the big tenant), then by text; each
    timed phase follows a few untimed searches of its kind."""
    rng, prng = np.random.default_rng(plan.seed + 1), random.Random(plan.seed + 1)
    enc = msgspec.json.encode
    c = plan.concurrency

    def by_vector(count: int, who: str | None) -> list[bytes]:
        return [
            enc({"user_id": who or f"user-{prng.randrange(plan.users)}", "vector": v, "limit": 10})
            for v in _vectors(rng, count, plan.dim)
        ]

    def by_text(count: int) -> list[bytes]:
        return [
            enc(
                {
                    "user_id": f"user-{prng.randrange(plan.users)}",
                    "query": " ".join(prng.choices(_WORDS, k=6)),
                    "limit": 10,
                }
            )
            for _ in range(count)
        ]

    big = big_count(plan.n, plan.skew)
    runs: list[tuple[str, str | None]] = [("search, vector", None)]
    if big:
        runs.append((f"search, vector, {BIG_TENANT} ({big:,})", BIG_TENANT))
    phases: list[Phase] = []
    with Progress(console=console, transient=True) as progress:
        for label, who in runs if plan.searches else []:
            await drive(url, "POST", "/v1/search", by_vector(20, who), c, progress, "warm up")
            bodies = by_vector(plan.searches, who)
            phases.append(await _timed(url, f"{label} (c={c})", bodies, c, progress))
        if plan.text_searches:
            await drive(url, "POST", "/v1/search", by_text(20), c, progress, "warm up")
            bodies = by_text(plan.text_searches)
            phases.append(await _timed(url, f"search, text (c={c})", bodies, c, progress))
    if plan.modes:
        phases.extend(await _compare_modes(url, plan, prng, console))
    return phases


async def _timed(
    url: str, label: str, bodies: list[bytes], concurrency: int, progress: Progress
) -> Phase:
    took, lat = await drive(url, "POST", "/v1/search", bodies, concurrency, progress, label)
    return Phase(
        label,
        len(bodies),
        took,
        len(bodies) / took,
        pct(lat, 0.5),
        pct(lat, 0.99),
        round(max(lat) * 1000, 3),
    )


async def _compare_modes(
    url: str, plan: SearchPlan, prng: random.Random, console: Console
) -> list[Phase]:
    """The same text queries in every mode, in alternating rounds, so that no mode runs
    on a warmer machine than another; each search embeds its query (cache off)."""
    queries = [
        (f"user-{prng.randrange(plan.users)}", " ".join(prng.choices(_WORDS, k=6)))
        for _ in range(plan.text_searches)
    ]
    if not queries:
        return []
    rounds = min(10, len(queries))
    latencies: dict[str, list[float]] = {m: [] for m in plan.modes}
    took: dict[str, float] = dict.fromkeys(plan.modes, 0.0)
    with Progress(console=console, transient=True) as progress:
        for r in range(rounds):
            part = queries[r::rounds]
            for mode in plan.modes if r % 2 == 0 else tuple(reversed(plan.modes)):
                bodies = [
                    msgspec.json.encode({"user_id": u, "query": q, "limit": 10, "mode": mode})
                    for u, q in part
                ]
                seconds, lat = await drive(
                    url, "POST", "/v1/search", bodies, plan.concurrency, progress, f"{mode} {r}"
                )
                took[mode] += seconds
                latencies[mode].extend(lat)
    return [
        Phase(
            f"search, text, {mode} (c={plan.concurrency})",
            len(latencies[mode]),
            took[mode],
            len(latencies[mode]) / took[mode],
            pct(latencies[mode], 0.5),
            pct(latencies[mode], 0.99),
        )
        for mode in plan.modes
    ]
