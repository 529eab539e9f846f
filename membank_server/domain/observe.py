"""What the server measures of itself over time: totals, request windows, SLIs, the history port.

A :class:`Totals` is the server's cumulative figures at one moment, every worker
added up (requests by outcome, the request-latency histogram, CPU seconds, RSS,
cache look-ups per level). The difference of two is a :class:`RequestWindow`:
what happened between them. The sampler stores one window beside each
:class:`~membank_server.domain.capacity.Sample`; the SLIs of any period are the
sum of its windows (:func:`sli_report`), so a percentile over an hour comes from
the hour's merged histogram, never from an average of percentiles.

Percentiles come from the histogram as Prometheus's ``histogram_quantile`` does
them: find the bucket the rank falls in and interpolate linearly inside it
(:func:`quantile_ms`). The buckets (:data:`LATENCY_BUCKETS_MS`) put a bound on
every target of the design (50, 100, 200 ms) so a verdict never depends on the
interpolation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from membank_server.domain.capacity import Sample
from membank_server.domain.slo import Slo

__all__ = [
    "LATENCY_BUCKETS_MS",
    "Census",
    "HistoryStore",
    "RequestWindow",
    "SliReport",
    "StoreCensus",
    "TenantFigures",
    "Totals",
    "TuningEvent",
    "merge_windows",
    "quantile_ms",
    "sli_report",
    "window_between",
]

#: Upper bounds (ms) of the request-latency buckets; one more bucket, +Inf, follows.
LATENCY_BUCKETS_MS: tuple[float, ...] = (
    1, 2.5, 5, 7.5, 10, 15, 20, 25, 30, 40, 50, 60, 75, 100, 150, 200, 250, 300, 400, 500,
    750, 1000, 2500, 5000, 10000,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Totals:
    """Cumulative figures of the whole server (all its workers) at ``at``.

    Attributes:
        latency: Requests per latency bucket (not cumulative), one more than
            :data:`LATENCY_BUCKETS_MS` (the last is above 10 s).
        cache: Look-ups per cache level and outcome (``hit``, ``miss``, ``error``).
    """

    at: datetime
    requests: int
    server_errors: int
    client_errors: int
    latency: tuple[int, ...]
    cpu_seconds: float
    rss_bytes: int
    in_flight: int = 0
    cache: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    #: The memory the server may use (the cgroup's limit, else the machine's), and CPUs.
    memory_limit_bytes: int = 0
    cpus: int = 1
    #: Job items waiting (pending or running, every kind), the queue's limit
    #: (``jobs.queue_max_items``; 0 without a pipeline), and the job workers running.
    queue_depth: int = 0
    queue_capacity: int = 0
    job_workers: int = 0


@dataclass(frozen=True, slots=True)
class TenantFigures:
    """One of the largest tenants, by pseudonym (never its user id)."""

    tenant: str
    memories: int
    stored_bytes: int


@dataclass(frozen=True, slots=True)
class Census:
    """Who holds what: users with a memory, the store's disk, the largest tenants."""

    users: int
    disk_bytes: int
    tenants: tuple[TenantFigures, ...] = ()


@dataclass(frozen=True, slots=True)
class RequestWindow:
    """What the server answered between ``at - seconds`` and ``at``."""

    at: datetime
    seconds: float
    requests: int
    server_errors: int
    client_errors: int
    latency: tuple[int, ...]
    cpu_seconds: float = 0.0


def _since(new: float, old: float) -> float:
    # A counter that went down was reset (a restart): what it holds is all new.
    return new - old if new >= old else new


def window_between(old: Totals, new: Totals) -> RequestWindow:
    """The window from ``old`` to ``new``, counting a reset counter from zero."""
    reset = new.requests < old.requests
    before = (0,) * len(new.latency) if reset else old.latency
    return RequestWindow(
        at=new.at,
        seconds=max(0.0, (new.at - old.at).total_seconds()),
        requests=int(_since(new.requests, old.requests)),
        server_errors=int(_since(new.server_errors, 0 if reset else old.server_errors)),
        client_errors=int(_since(new.client_errors, 0 if reset else old.client_errors)),
        latency=tuple(max(0, n - o) for n, o in zip(new.latency, before, strict=True)),
        cpu_seconds=max(0.0, _since(new.cpu_seconds, old.cpu_seconds)),
    )


def merge_windows(windows: Sequence[RequestWindow]) -> RequestWindow | None:
    """One window summing ``windows`` (ending at the last one); None for none."""
    if not windows:
        return None
    width = len(windows[0].latency)
    latency = [0] * width
    for w in windows:
        for i, n in enumerate(w.latency):
            latency[i] += n
    return RequestWindow(
        at=max(w.at for w in windows),
        seconds=sum(w.seconds for w in windows),
        requests=sum(w.requests for w in windows),
        server_errors=sum(w.server_errors for w in windows),
        client_errors=sum(w.client_errors for w in windows),
        latency=tuple(latency),
        cpu_seconds=sum(w.cpu_seconds for w in windows),
    )


def quantile_ms(latency: Sequence[int], q: float) -> float | None:
    """The ``q`` quantile of a bucketed latency, interpolated in its bucket; None for no request.

    Requests above the last bound are reported at the last bound (as Prometheus does).
    """
    total = sum(latency)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, count in enumerate(latency):
        if count and seen + count >= rank:
            if i >= len(LATENCY_BUCKETS_MS):
                return LATENCY_BUCKETS_MS[-1]
            lower = LATENCY_BUCKETS_MS[i - 1] if i else 0.0
            upper = LATENCY_BUCKETS_MS[i]
            return lower + (upper - lower) * (rank - seen) / count
        seen += count
    return LATENCY_BUCKETS_MS[-1]


@dataclass(frozen=True, slots=True)
class SliReport:
    """The SLIs of one period against the objectives, and the error budget.

    ``error_budget`` is the share of the period's allowed failures
    (``(1 - availability target) x requests``) still unspent: 1 untouched, 0 spent,
    negative overspent; None without requests.
    """

    seconds: float
    requests: int
    server_errors: int
    client_errors: int
    availability: float | None
    error_rate: float | None
    p95_ms: float | None
    p99_ms: float | None
    rps: float
    slo: Slo
    error_budget: float | None
    met: Mapping[str, bool | None]


def sli_report(window: RequestWindow | None, slo: Slo, seconds: float) -> SliReport:
    """The SLIs of ``window`` (covering ``seconds``) judged against ``slo``.

    Availability is the share of requests not answered 5xx; the error rate the share
    answered 4xx or 5xx (the load test's definitions); throughput is requests over
    the seconds the window covers.
    """
    requests = window.requests if window else 0
    s5 = window.server_errors if window else 0
    s4 = window.client_errors if window else 0
    latency = window.latency if window else ()
    availability = 1 - s5 / requests if requests else None
    error_rate = (s4 + s5) / requests if requests else None
    p95, p99 = quantile_ms(latency, 0.95), quantile_ms(latency, 0.99)
    rps = requests / seconds if seconds > 0 else 0.0
    allowed = (1 - slo.availability) * requests
    budget = (1 - s5 / allowed if allowed else (1.0 if s5 == 0 else 0.0)) if requests else None
    met: dict[str, bool | None] = {
        "availability": None if availability is None else availability >= slo.availability,
        "error_rate": None if error_rate is None else error_rate <= slo.error_rate,
        "p95_ms": None if p95 is None else p95 < slo.p95_ms,
        "p99_ms": None if p99 is None else p99 < slo.p99_ms,
        "rps": rps > slo.min_rps if requests else None,
    }
    return SliReport(
        seconds=seconds,
        requests=requests,
        server_errors=s5,
        client_errors=s4,
        availability=availability,
        error_rate=error_rate,
        p95_ms=p95,
        p99_ms=p99,
        rps=rps,
        slo=slo,
        error_budget=budget,
        met=met,
    )


@dataclass(frozen=True, slots=True)
class TuningEvent:
    """One step of a tuning session, as ``membank tune history`` shows it.

    Attributes:
        action: ``session`` (its start, with the objective), ``proposed``,
            ``applied``, ``kept``, ``rolled_back``, ``refused`` (needs a restart,
            or out of bounds) or ``ended``.
        before, after: The objective measured before and after the change.
    """

    at: datetime
    session: str
    action: str
    tunable: str = ""
    old: float | None = None
    new: float | None = None
    objective: str = ""
    before: float | None = None
    after: float | None = None
    note: str = ""


class HistoryStore(Protocol):
    """Where the server keeps its samples, request windows and tuning sessions, durably.

    Several workers (or instances) may write: :meth:`add` keeps the first sample of
    a moment and answers False to the others.
    """

    #: Where it is, for messages (a path, or host/db of PostgreSQL, never a password).
    where: str

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...

    async def add(self, sample: Sample, window: RequestWindow) -> bool:
        """Keep one sample and its window (at ``sample.at``); False if that moment is kept."""
        ...

    async def samples(self, since: datetime | None) -> list[Sample]:
        """Samples at or after ``since`` (all when None), oldest first."""
        ...

    async def windows(self, since: datetime) -> list[RequestWindow]:
        """Request windows ending after ``since``, oldest first."""
        ...

    async def prune(self, before: datetime) -> int:
        """Forget samples and windows older than ``before``; how many samples went."""
        ...

    async def add_tuning(self, event: TuningEvent) -> None: ...

    async def tuning(self, limit: int) -> list[TuningEvent]:
        """The last ``limit`` tuning events, oldest first."""
        ...

    async def secret(self, name: str) -> bytes:
        """A random value made the first time it is asked for, the same ever after."""
        ...


class StoreCensus(Protocol):
    """How a store tells who holds what (see ``storage.census``)."""

    #: False for a store that cannot tell (its answers are zeros).
    known: bool

    async def tenants(self, top: int) -> tuple[int, list[tuple[str, int]]]:
        """Users with a live memory, and the ``top`` largest as (user id, live memories)."""
        ...

    async def disk_bytes(self) -> int:
        """Bytes the store uses on disk."""
        ...
