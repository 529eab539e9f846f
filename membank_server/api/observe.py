"""The server about itself, for operators: history, SLIs, totals, tenants, tunables, tuning.

Everything here needs an admin key. ``membank capacity plan`` reads the history,
``membank sli`` the SLIs, ``membank tune`` the totals and tunables (and changes
one at a time, journalled with its session).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post, put
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter, QueryParameter
from litestar.status_codes import HTTP_201_CREATED

from membank_server.api._params import DURATION_PATTERN, duration, instant
from membank_server.api.errors import responses
from membank_server.api.tenancy import admin_only, audit_note
from membank_server.domain.capacity import Sample
from membank_server.domain.observe import LATENCY_BUCKETS_MS, SliReport, TuningEvent
from membank_server.domain.tuning import Tunable
from membank_server.services.observe import ObserveService
from membank_server.services.tunables import TunableService

__all__ = [
    "HistoryRead",
    "ObserveController",
    "SliRead",
    "TenantRead",
    "TotalsRead",
    "TunableChange",
    "TunableRead",
    "TuningEventBody",
]

Observe = NamedDependency[ObserveService]
Tunables = NamedDependency[TunableService]
_TOKEN = r"^[A-Za-z0-9._:-]{1,64}$(?!\n)"
Token = Annotated[str, msgspec.Meta(pattern=_TOKEN)]
Note = Annotated[str, msgspec.Meta(max_length=500, pattern=r"^[^\x00-\x1f\x7f]*$(?!\n)")]


class SampleRead(msgspec.Struct, kw_only=True):
    at: datetime
    memories: int
    users: int
    disk_bytes: int
    rss_bytes: int
    rps: float
    p95_ms: float | None
    p99_ms: float | None
    cpu_percent: float
    errors_per_s: float
    backend: str
    dimension: int
    queue_depth: int = 0
    job_workers: int = 0

    @classmethod
    def of(cls, s: Sample) -> SampleRead:
        return cls(**dataclasses.asdict(s))


class HistoryRead(msgspec.Struct, kw_only=True):
    samples: list[SampleRead]


class SliRead(msgspec.Struct, kw_only=True):
    window_seconds: float
    requests: int
    server_errors: int
    client_errors: int
    availability: float | None
    error_rate: float | None
    p95_ms: float | None
    p99_ms: float | None
    rps: float
    #: Share of the window's allowed failures still unspent (1 untouched, < 0 overspent).
    error_budget: float | None
    objectives: dict[str, float]
    #: Per SLI: met, broken, or null with no request in the window.
    met: dict[str, bool | None]

    @classmethod
    def of(cls, r: SliReport) -> SliRead:
        return cls(
            window_seconds=r.seconds,
            requests=r.requests,
            server_errors=r.server_errors,
            client_errors=r.client_errors,
            availability=r.availability,
            error_rate=r.error_rate,
            p95_ms=r.p95_ms,
            p99_ms=r.p99_ms,
            rps=r.rps,
            error_budget=r.error_budget,
            objectives=dataclasses.asdict(r.slo),
            met=dict(r.met),
        )


class TotalsRead(msgspec.Struct, kw_only=True):
    """Cumulative figures of the whole server: the tuner compares two of them."""

    at: datetime
    requests: int
    server_errors: int
    client_errors: int
    latency_bounds_ms: list[float]
    #: Requests per bucket (not cumulative); one more than the bounds (above the last).
    latency: list[int]
    cpu_seconds: float
    rss_bytes: int
    in_flight: int
    cache: dict[str, dict[str, int]]
    memory_limit_bytes: int
    cpus: int
    #: Job items waiting, the queue's limit (0: no pipeline) and the job workers running.
    queue_depth: int = 0
    queue_capacity: int = 0
    job_workers: int = 0


class TenantRead(msgspec.Struct, kw_only=True):
    tenant: str
    user_id: str


class TunableRead(msgspec.Struct, kw_only=True):
    name: str
    value: float
    minimum: float
    maximum: float
    step: float
    #: False: the change takes a restart (proposed, never applied live).
    live: bool
    integer: bool
    help: str

    @classmethod
    def of(cls, t: Tunable) -> TunableRead:
        b = t.bounds
        return cls(
            name=t.name, value=t.value, minimum=b.minimum, maximum=b.maximum, step=b.step,
            live=t.live, integer=t.integer, help=t.help,
        )  # fmt: skip


class TunableChange(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    value: float
    session: Token = "manual"
    note: Note = ""


class TuningEventBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    at: datetime | None = None
    session: Token
    action: Annotated[
        str, msgspec.Meta(pattern=r"^(session|proposed|applied|kept|rolled_back|refused|ended)$")
    ]
    tunable: Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9._]{0,64}$")] = ""
    old: float | None = None
    new: float | None = None
    objective: Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9_]{0,32}$")] = ""
    before: float | None = None
    after: float | None = None
    note: Note = ""

    def to_domain(self) -> TuningEvent:
        values = msgspec.structs.asdict(self)
        values["at"] = (self.at or datetime.now(UTC)).astimezone(UTC)
        return TuningEvent(**values)

    @classmethod
    def of(cls, e: TuningEvent) -> TuningEventBody:
        return cls(**dataclasses.asdict(e))


class ObserveController(Controller):
    """The server's own figures; admin only."""

    path = "/v1/admin"
    tags = ["observability"]
    guards = [admin_only]

    @get(
        "/history",
        summary="The server's samples of itself (capacity planning reads them)",
        operation_id="read_history",
        responses=responses(422, 503),
    )
    async def history(
        self,
        observe: Observe,
        since: Annotated[
            str | None,
            QueryParameter(format="date-time", description="an RFC 3339 time with an offset"),
        ] = None,
    ) -> HistoryRead:
        samples = await observe.samples(instant(since, "since"))
        return HistoryRead(samples=[SampleRead.of(s) for s in samples])

    @get(
        "/sli",
        summary="Availability, latency, errors and throughput over a window, against the SLOs",
        operation_id="read_sli",
        responses=responses(422, 503),
    )
    async def sli(
        self,
        observe: Observe,
        window: Annotated[
            str,
            QueryParameter(
                description="90s, 15m, 1h, 7d or 2w", max_length=16, pattern=DURATION_PATTERN
            ),
        ] = "1h",
    ) -> SliRead:
        return SliRead.of(await observe.sli(duration(window, "window")))

    @get(
        "/totals",
        summary="The server's cumulative figures now, every worker added up",
        operation_id="read_totals",
        responses=responses(503),
    )
    async def totals(self, observe: Observe) -> TotalsRead:
        t = observe.totals()
        return TotalsRead(
            at=t.at, requests=t.requests, server_errors=t.server_errors,
            client_errors=t.client_errors, latency_bounds_ms=list(LATENCY_BUCKETS_MS),
            latency=list(t.latency), cpu_seconds=t.cpu_seconds, rss_bytes=t.rss_bytes,
            in_flight=t.in_flight, cache={k: dict(v) for k, v in t.cache.items()},
            memory_limit_bytes=t.memory_limit_bytes, cpus=t.cpus, queue_depth=t.queue_depth,
            queue_capacity=t.queue_capacity, job_workers=t.job_workers,
        )  # fmt: skip

    @get(
        "/tenants",
        summary="The largest tenants of the last census: the pseudonyms metrics show, and who",
        operation_id="list_top_tenants",
        responses=responses(),
    )
    async def tenants(self, observe: Observe) -> list[TenantRead]:
        return [TenantRead(tenant=t, user_id=u) for t, u in observe.tenants()]

    @get(
        "/tunables",
        summary="What the tuner may change, its bounds, and whether it applies live",
        operation_id="list_tunables",
        responses=responses(),
    )
    async def tunables(self, tunables: Tunables) -> list[TunableRead]:
        return [TunableRead.of(t) for t in tunables.list()]

    @put(
        "/tunables/{name:str}",
        summary="Change one live tunable now (one that takes a restart is refused, 409)",
        operation_id="set_tunable",
        responses=responses(404, 409, 422),
        opt={"audit": "tunable.set"},
    )
    async def set_tunable(
        self,
        request: Request[Any, Any, Any],
        tunables: Tunables,
        name: Annotated[str, PathParameter(pattern=r"^[a-z0-9._]{1,64}$(?!\n)")],
        data: JSONBody[TunableChange],
    ) -> TunableRead:
        changed = await tunables.apply(name, data.value, session=data.session, note=data.note)
        note = audit_note(request.scope)
        note.target, note.details = f"tunable:{name}", {"value": data.value}
        return TunableRead.of(changed)

    @get(
        "/tuning",
        summary="The tuning journal: sessions and their decisions, oldest first",
        operation_id="read_tuning_journal",
        responses=responses(422, 503),
    )
    async def journal(
        self, observe: Observe, limit: Annotated[int, QueryParameter(ge=1, le=10_000)] = 200
    ) -> list[TuningEventBody]:
        return [TuningEventBody.of(e) for e in await observe.journal(limit)]

    @post(
        "/tuning",
        status_code=HTTP_201_CREATED,
        summary="Record one step of a tuning session",
        operation_id="record_tuning_event",
        responses=responses(422, 503),
    )
    async def record(self, observe: Observe, data: JSONBody[TuningEventBody]) -> None:
        await observe.record(data.to_domain())
