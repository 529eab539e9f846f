"""The sampler over fakes: windows from totals, census with pseudonyms, first sample wins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from membank_server.domain.observe import LATENCY_BUCKETS_MS, Census, Totals
from membank_server.domain.telemetry import NullTelemetry
from membank_server.services.inputs import NewMemory
from membank_server.services.memories import MemoryService
from membank_server.services.sampler import Sampler, pseudonym
from tests.unit.fakes import FakeEmbedder, InMemoryStore, ListHistory

T0 = datetime(2026, 11, 1, tzinfo=UTC)
N = len(LATENCY_BUCKETS_MS) + 1


class _Reader:
    def __init__(self, totals: list[Totals]) -> None:
        self._totals = totals

    def totals(self) -> Totals:
        return self._totals.pop(0)


class _Census:
    known = True

    async def tenants(self, top: int) -> tuple[int, list[tuple[str, int]]]:
        return 3, [("alice@example.com", 2), ("bob", 1)][:top]

    async def disk_bytes(self) -> int:
        return 4096


class _Telemetry(NullTelemetry):
    def __init__(self) -> None:
        self.censuses: list[Census] = []

    def census(self, census: Census) -> None:
        self.censuses.append(census)


def _totals(at: int, requests: int, in_bucket_3: int, cpu: float) -> Totals:
    latency = [0] * N
    latency[3] = in_bucket_3  # (5, 7.5] ms
    latency[-2] = requests - in_bucket_3  # (5, 10] s
    return Totals(
        T0 + timedelta(seconds=at), requests, 2, 0, tuple(latency), cpu, 500_000_000,
        queue_depth=at, queue_capacity=1000, job_workers=3,
    )  # fmt: skip


async def _store_with(users: dict[str, int]) -> InMemoryStore:
    store = InMemoryStore()
    service = MemoryService(store, FakeEmbedder())
    for user, n in users.items():
        for i in range(n):
            await service.remember(NewMemory(user, f"memory {i}"))
    return store


def _sampler(store: InMemoryStore, totals: list[Totals], **kw: Any) -> tuple[Sampler, ListHistory]:
    history = ListHistory()
    memories = MemoryService(store, FakeEmbedder())
    sampler = Sampler(
        history, _Reader(totals), memories, _Census(), kw.pop("telemetry", NullTelemetry()),
        backend="edge", dimension=8, every=60.0, retention=timedelta(days=1), top=10,
        census_every=300.0, clock=kw.pop("clock", lambda: 1_000.0),
    )  # fmt: skip
    return sampler, history


async def test_a_tick_keeps_the_window_since_the_last_one() -> None:
    store = await _store_with({"alice@example.com": 2, "bob": 1})
    telemetry = _Telemetry()
    sampler, history = _sampler(
        store,
        [_totals(0, 100, 100, 10.0), _totals(60, 700, 688, 40.0), _totals(61, 703, 691, 40.5)],
        telemetry=telemetry,
    )
    assert await sampler.tick(0.0) is None  # the first read only starts the count
    sample = await sampler.tick(60.0)
    assert sample is not None and history.kept[0][0] == sample
    # 600 requests in 60 s, 12 of them above 5 s: p99 is in that bucket, p95 is not.
    assert sample.rps == 10.0 and sample.cpu_percent == 50.0 and sample.errors_per_s == 0
    assert sample.p95_ms is not None and sample.p95_ms <= 7.5 < 5000 <= (sample.p99_ms or 0)
    assert (sample.memories, sample.users, sample.disk_bytes) == (3, 3, 4096)
    assert (sample.queue_depth, sample.job_workers) == (60, 3)  # the pipeline, as last seen
    assert sample.at == datetime.fromtimestamp(60, UTC)
    # What came since: the live window, not in the history yet.
    live = sampler.live_window()
    assert live is not None and live.requests == 3


async def test_tenants_are_pseudonyms_in_the_metrics() -> None:
    store = await _store_with({"alice@example.com": 2, "bob": 1})
    telemetry = _Telemetry()
    sampler, history = _sampler(
        store, [_totals(0, 0, 0, 0.0), _totals(60, 0, 0, 0.0)], telemetry=telemetry
    )
    await sampler.tick(0.0)
    await sampler.tick(60.0)
    (census,) = telemetry.censuses
    secret = await history.secret("tenant-pseudonyms")
    assert [t.tenant for t in census.tenants] == [
        pseudonym(secret, "alice@example.com"),
        pseudonym(secret, "bob"),
    ]
    assert all("alice" not in t.tenant and t.tenant.startswith("t-") for t in census.tenants)
    assert census.tenants[0].memories == 2 and census.tenants[0].stored_bytes > 0
    # The operator's way back from a pseudonym to a user.
    assert sampler.tenants()[0] == (census.tenants[0].tenant, "alice@example.com")


async def test_the_same_moment_is_kept_once_and_old_samples_go() -> None:
    store = await _store_with({"bob": 1})
    sampler, history = _sampler(
        store, [_totals(0, 0, 0, 0.0), _totals(60, 5, 5, 0.0), _totals(61, 6, 6, 0.0)]
    )
    await sampler.tick(0.0)
    await sampler.tick(60.0)
    await sampler.tick(60.0)  # a second worker's sample of the same moment
    assert len(history.kept) == 1 and history.kept[0][1].requests == 5
    assert history.pruned == [datetime.fromtimestamp(60, UTC) - timedelta(days=1)]
