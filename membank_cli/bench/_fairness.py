"""What ``membank bench fairness`` does: one tenant's searches while another key pushes.

The noisy key (its own user, default rate limit and concurrency limits, as any
tenant) sends maximum-size batches with embedding (as many as the server lets it
have in flight) and reads the history of a memory it keeps updating, as fast as its
rate limit allows; refusals (429) are counted, not errors. Meanwhile the quiet
tenant searches by text, a few at a time. The same searches run alone first, so
the two sets of figures compare. RSS is sampled before and after one maximum batch.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

import httpx

from membank_cli._local_server import rss_mib
from membank_cli.bench._http import pct

__all__ = ["FairnessPlan", "FairnessReport", "measure_fairness"]

_TOPICS = (
    "my sister moved to Lisbon in March and works as a dentist",
    "I am allergic to peanuts and try to eat vegetarian on weekdays",
    "the quarterly budget review is every first Tuesday at the office",
    "our daughter started piano lessons and loves jazz",
    "I run a marathon every autumn and swim twice a week",
    "the flight to Tokyo leaves on Friday evening from gate 12",
)


@dataclass(frozen=True)
class FairnessPlan:
    #: Seconds the quiet tenant searches, alone and then under load.
    seconds: float = 20.0
    #: The quiet tenant's memories and its searches in flight.
    quiet_memories: int = 2_000
    quiet_concurrency: int = 2
    #: The quiet tenant's searches per second in all (well under its rate limit).
    quiet_rps: float = 40.0
    #: Items per noisy batch (the server's limits.batch_max_items by default).
    batch_items: int = 1_000
    #: Noisy batches in flight at once (more than the per-key limit: the excess is refused).
    noisy_batches: int = 3
    #: Noisy history readers in flight.
    noisy_readers: int = 8
    seed: int = 11


@dataclass
class LoadFigures:
    searches: int = 0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0


@dataclass
class FairnessReport:
    alone: LoadFigures = field(default_factory=LoadFigures)
    loaded: LoadFigures = field(default_factory=LoadFigures)
    noisy_batches_done: int = 0
    noisy_batches_refused: int = 0
    noisy_reads_done: int = 0
    noisy_reads_refused: int = 0
    rss_before_batch_mib: float | None = None
    rss_after_batch_mib: float | None = None
    rss_after_load_mib: float | None = None


def _text(rng: random.Random, i: int) -> str:
    return f"{rng.choice(_TOPICS)}; note {i} about {rng.choice(_TOPICS).split()[-1]}"


async def _quiet_searches(
    client: httpx.AsyncClient, plan: FairnessPlan, rng: random.Random, stop: asyncio.Event
) -> LoadFigures:
    latencies: list[float] = []

    period = plan.quiet_concurrency / plan.quiet_rps

    async def one_client() -> None:
        while not stop.is_set():
            body = {"user_id": "quiet", "query": rng.choice(_TOPICS), "limit": 10}
            started = time.perf_counter()
            r = await client.post("/v1/search", json=body)
            took = time.perf_counter() - started
            latencies.append(took)
            r.raise_for_status()
            await asyncio.sleep(max(0.0, period - took))

    await asyncio.gather(*(one_client() for _ in range(plan.quiet_concurrency)))
    return LoadFigures(
        len(latencies), pct(latencies, 0.5), pct(latencies, 0.99), pct(latencies, 1.0)
    )


async def _for(seconds: float, stop: asyncio.Event) -> None:
    await asyncio.sleep(seconds)
    stop.set()


async def _noisy(
    client: httpx.AsyncClient,
    plan: FairnessPlan,
    rng: random.Random,
    report: FairnessReport,
    stop: asyncio.Event,
    hot: str,
) -> None:
    async def batches() -> None:
        i = 0
        while not stop.is_set():
            items = [
                {"user_id": "noisy", "content": _text(rng, i + j)} for j in range(plan.batch_items)
            ]
            i += plan.batch_items
            r = await client.post("/v1/memories/batch", json={"memories": items})
            if r.status_code == 429:
                report.noisy_batches_refused += 1
                await asyncio.sleep(0.05)
            else:
                r.raise_for_status()
                report.noisy_batches_done += 1

    async def reads() -> None:
        while not stop.is_set():
            r = await client.get(f"/v1/memories/{hot}/history", params={"user_id": "noisy"})
            if r.status_code == 429:
                report.noisy_reads_refused += 1
                await asyncio.sleep(float(r.headers.get("retry-after", "0.05")) / 20)
            else:
                r.raise_for_status()
                report.noisy_reads_done += 1

    await asyncio.gather(
        *(batches() for _ in range(plan.noisy_batches)),
        *(reads() for _ in range(plan.noisy_readers)),
    )


async def _seed(
    url: str, admin: dict[str, str], plan: FairnessPlan, rng: random.Random
) -> tuple[dict[str, str], dict[str, str], str]:
    async with httpx.AsyncClient(base_url=url, headers=admin, timeout=300) as client:
        keys = []
        for user in ("quiet", "noisy"):
            r = await client.post("/v1/admin/keys", json={"name": f"bench-{user}", "user_id": user})
            r.raise_for_status()
            keys.append({"Authorization": f"Bearer {r.json()['secret']}"})
        for start in range(0, plan.quiet_memories, 500):
            items = [
                {"user_id": "quiet", "content": _text(rng, start + j)}
                for j in range(min(500, plan.quiet_memories - start))
            ]
            (await client.post("/v1/memories/batch", json={"memories": items})).raise_for_status()
        r = await client.post("/v1/memories", json={"user_id": "noisy", "content": "hot memory"})
        r.raise_for_status()
        hot = r.json()["id"]
        for version in range(50):  # a history worth reading
            patch = {"content": f"hot memory, version {version + 2}"}
            r = await client.patch(f"/v1/memories/{hot}", params={"user_id": "noisy"}, json=patch)
            r.raise_for_status()
    return keys[0], keys[1], hot


async def measure_fairness(
    url: str, pid: int, admin: dict[str, str], plan: FairnessPlan
) -> FairnessReport:
    """Seed, search alone, one maximum batch between RSS samples, then search under load."""
    rng = random.Random(plan.seed)
    quiet_key, noisy_key, hot = await _seed(url, admin, plan, rng)
    report = FairnessReport()
    async with (
        httpx.AsyncClient(base_url=url, headers=quiet_key, timeout=120) as quiet,
        httpx.AsyncClient(base_url=url, headers=noisy_key, timeout=300) as noisy,
    ):
        stop = asyncio.Event()
        report.alone, _ = await asyncio.gather(
            _quiet_searches(quiet, plan, rng, stop), _for(plan.seconds, stop)
        )
        report.rss_before_batch_mib = rss_mib(pid)
        items = [{"user_id": "noisy", "content": _text(rng, j)} for j in range(plan.batch_items)]
        (await noisy.post("/v1/memories/batch", json={"memories": items})).raise_for_status()
        report.rss_after_batch_mib = rss_mib(pid)
        stop = asyncio.Event()
        report.loaded, *_ = await asyncio.gather(
            _quiet_searches(quiet, plan, rng, stop),
            _noisy(noisy, plan, rng, report, stop, hot),
            _for(plan.seconds, stop),
        )
        report.rss_after_load_mib = rss_mib(pid)
    return report
