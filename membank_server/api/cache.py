"""Cache operations over HTTP: stats, popular queries, warmup, flush."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal

import msgspec
from litestar import Controller, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody, QueryParameter

from membank_server.api.errors import responses
from membank_server.api.schemas import SearchBody
from membank_server.api.tenancy import admin_only
from membank_server.domain.model import USER_ID_PATTERN
from membank_server.services.cache_admin import CacheAdmin, CacheReport

__all__ = ["CacheController", "CacheStatsRead", "PopularList", "WarmupBody", "WarmupRead"]

Admin = NamedDependency[CacheAdmin]


class WarmupBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    strategy: Literal["eager", "lazy"] = "eager"
    top: Annotated[int, msgspec.Meta(ge=1, le=100_000)] | None = None
    # ge, not gt: the OpenAPI generator drops an exclusive minimum on an optional field.
    sample: Annotated[float, msgspec.Meta(ge=0.001, le=1)] | None = None
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=1000)] | None = None


class WarmupRead(msgspec.Struct, kw_only=True):
    selected: int
    users: int
    warmed: int
    already_cached: int
    failed: int
    skipped_locked: bool


class WarmupStatusRead(msgspec.Struct, kw_only=True):
    strategy: str | None
    cron: str | None
    last: WarmupRead | None
    rounds: int


class CacheStatsRead(msgspec.Struct, kw_only=True):
    """Absent counts (``searches``, ``levels``) mean the cache is off."""

    enabled: bool
    searches: dict[str, int] | msgspec.UnsetType = msgspec.UNSET
    search_hit_ratio: float | msgspec.UnsetType | None = msgspec.UNSET
    #: Per level (l1, l2, l3): outcome counts (hit, miss, error, ...) and hit_ratio.
    levels: dict[str, dict[str, float | None]] | msgspec.UnsetType = msgspec.UNSET
    warmup: WarmupStatusRead

    @classmethod
    def of(cls, r: CacheReport) -> CacheStatsRead:
        w = r.warmup
        last = WarmupRead(**dataclasses.asdict(w.last)) if w.last is not None else None
        status = WarmupStatusRead(strategy=w.strategy, cron=w.cron, last=last, rounds=w.rounds)
        if r.counts is None:
            return cls(enabled=r.enabled, warmup=status)
        c = r.counts
        levels: dict[str, dict[str, float | None]] = {
            name: {**level.outcomes, "hit_ratio": level.hit_ratio}
            for name, level in c.levels.items()
        }
        return cls(
            enabled=r.enabled,
            searches=c.searches,
            search_hit_ratio=c.search_hit_ratio,
            levels=levels,
            warmup=status,
        )


class PopularRead(msgspec.Struct, kw_only=True):
    user_id: str
    count: float
    #: The body of ``POST /v1/search`` that replays it.
    search: SearchBody


class PopularList(msgspec.Struct, kw_only=True):
    items: list[PopularRead]


class CacheController(Controller):
    path = "/v1/cache"
    guards = [admin_only]
    tags = ["cache"]

    @get(
        "/stats",
        summary="Cache outcomes and hit ratios per level in this process",
        operation_id="get_cache_stats",
        responses=responses(503),
    )
    async def stats(self, cache_admin: Admin) -> CacheStatsRead:
        return CacheStatsRead.of(cache_admin.report())

    @get(
        "/popular",
        summary="The most asked searches (what warmup replays)",
        operation_id="list_popular_searches",
        responses=responses(404, 422, 503),
    )
    async def popular(
        self,
        cache_admin: Admin,
        k: Annotated[int, QueryParameter(ge=1, le=10_000)] = 50,
        sample: Annotated[float, QueryParameter(gt=0, le=1)] = 1.0,
    ) -> PopularList:
        found = await cache_admin.popular(k, sample)
        return PopularList(
            items=[
                PopularRead(user_id=p.user_id, count=p.count, search=SearchBody.of(p.search))
                for p in found
            ]
        )

    @post(
        "/warmup",
        summary="Warm the cache now (eager) or in the background (lazy)",
        operation_id="warm_cache",
        status_code=200,
        responses=responses(
            404,
            415,
            422,
            503,
            others={
                202: ResponseSpec(
                    data_container=dict[str, str],
                    description="lazy: warming in the background",
                    generate_examples=False,
                )
            },
        ),
        opt={"audit": "cache.warmup"},
    )
    async def warmup(
        self, cache_admin: Admin, data: JSONBody[WarmupBody]
    ) -> Response[WarmupRead | dict[str, str]]:
        report = await cache_admin.warm(
            data.strategy, top=data.top, sample=data.sample, batch_size=data.batch_size
        )
        if report is None:
            return Response({"status": "started"}, status_code=202)
        return Response(WarmupRead(**dataclasses.asdict(report)))

    @delete(
        status_code=200,
        summary="Flush cached searches (of one user, or everything)",
        operation_id="flush_cache",
        responses=responses(404, 422, 503),
        opt={"audit": "cache.flush"},
    )
    async def flush(
        self,
        cache_admin: Admin,
        user_id: Annotated[
            str | None,
            QueryParameter(min_length=1, max_length=128, pattern=USER_ID_PATTERN.pattern),
        ] = None,
    ) -> dict[str, int]:
        return {"flushed": await cache_admin.flush(user_id)}
