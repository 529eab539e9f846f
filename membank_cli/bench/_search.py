"""What ``membank bench search`` does against one server: its plan, bodies and phases.

Black-box: everything goes over HTTP, so the figures include the server, the JSON
codec and the store, as a client sees them. Request bodies are made before the
clock starts, so the client's own encoding is not counted.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import msgspec
import numpy as np
from rich.console import Console
from rich.progress import Progress

from membank_cli.bench._http import Phase, drive, pct

__all__ = ["BACKENDS", "SearchPlan", "measure"]

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
    rng, prng = np.random.default_rng(plan.seed), random.Random(plan.seed)
    n, embed_n, users = plan.n, plan.embed_n, plan.users
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
                        for j, vec in enumerate(_vectors(rng, min(batch, n - start), plan.dim))
                    ]
                }
            )
            for start in range(0, n, batch)
        ]
        took, _ = await drive(
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
        for label, bodies in (
            (
                "search, vector",
                [
                    enc({"user_id": f"user-{prng.randrange(users)}", "vector": v, "limit": 10})
                    for v in _vectors(rng, plan.searches, plan.dim)
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
                    for _ in range(plan.text_searches)
                ],
            ),
        ):
            if not bodies:
                continue
            took, lat = await drive(
                url, "POST", "/v1/search", bodies, plan.concurrency, progress, label
            )
            phases.append(
                Phase(
                    f"{label} (c={plan.concurrency})",
                    len(bodies),
                    took,
                    len(bodies) / took,
                    pct(lat, 0.5),
                    pct(lat, 0.99),
                )
            )
    if plan.modes:
        phases.extend(await _compare_modes(url, plan, prng, console))
    return phases


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
