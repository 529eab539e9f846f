"""Cache operations over HTTP: stats, popular queries, warmup, flush."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Response, delete, get, post
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody, QueryParameter

from membank_server.api.errors import responses
from membank_server.api.tenancy import admin_only
from membank_server.domain.errors import NotEnabled
from membank_server.domain.model import USER_ID_PATTERN
from membank_server.services.inputs import RecallQuery
from membank_server.services.recall_cache import RecallCache, replayable
from membank_server.services.runtime import Runtime
from membank_server.services.warmup import in_sample

__all__ = ["CacheController", "WarmupBody"]


class WarmupBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    strategy: Literal["eager", "lazy"] = "eager"
    top: Annotated[int, msgspec.Meta(ge=1, le=100_000)] | None = None
    # ge, not gt: the OpenAPI generator drops an exclusive minimum on an optional field.
    sample: Annotated[float, msgspec.Meta(ge=0.001, le=1)] | None = None
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=1000)] | None = None


def _search_body(q: RecallQuery) -> dict[str, Any]:
    """A counted search as the body of ``POST /v1/search`` (what the CLI replays)."""
    f = q.filters
    metadata: dict[str, Any] = {}
    for c in f.metadata:
        if c.any_of is not None:
            metadata[c.key] = {"in": list(c.any_of)}
        elif c.gte is not None or c.lte is not None:
            metadata[c.key] = {k: v for k, v in (("gte", c.gte), ("lte", c.lte)) if v is not None}
        else:
            metadata[c.key] = c.equals
    filters = {
        "agent_id": f.agent_id,
        "session_id": f.session_id,
        "created_after": f.created_after.isoformat() if f.created_after else None,
        "created_before": f.created_before.isoformat() if f.created_before else None,
        "metadata": metadata or None,
    }
    body: dict[str, Any] = {"user_id": q.user_id, "query": q.query, "limit": q.limit}
    if q.min_score is not None:
        body["min_score"] = q.min_score
    kept = {k: v for k, v in filters.items() if v is not None}
    if kept:
        body["filters"] = kept
    return body


def _cache(runtime: Runtime) -> RecallCache:
    cache = runtime.memories.recall_cache
    if cache is None:
        raise NotEnabled("the cache is off on this server (cache.enabled=false)")
    return cache


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
    async def stats(self, state: State) -> dict[str, Any]:
        runtime: Runtime = state.runtime
        cache = runtime.memories.recall_cache
        return {
            "enabled": cache is not None,
            **(cache.stats.snapshot() if cache is not None else {}),
            "warmup": {
                "strategy": runtime.warmup.strategy,
                "cron": runtime.warmup.cron if runtime.warmup.strategy == "scheduled" else None,
                "last": dataclasses.asdict(runtime.last_warmup) if runtime.last_warmup else None,
                "rounds": runtime.warmup_rounds,
            },
        }

    @get(
        "/popular",
        summary="The most asked searches (what warmup replays)",
        operation_id="list_popular_searches",
        responses=responses(404, 422, 503),
    )
    async def popular(
        self,
        state: State,
        k: Annotated[int, QueryParameter(ge=1, le=10_000)] = 50,
        sample: Annotated[float, QueryParameter(gt=0, le=1)] = 1.0,
    ) -> dict[str, Any]:
        cache = _cache(state.runtime)
        if cache.popular is None:
            return {"items": []}
        ranked = await cache.popular.top(k)
        return {
            "items": [
                {"user_id": user, "count": count, "search": _search_body(replayable(user, query))}
                for user, query, count in ranked
                if in_sample(user, sample)
            ]
        }

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
    async def warmup(self, state: State, data: JSONBody[WarmupBody]) -> Response[dict[str, Any]]:
        runtime: Runtime = state.runtime
        _cache(runtime)
        if runtime.warmer is None:
            raise NotEnabled("no popular-query counts to warm from")
        p = runtime.warmup
        top = data.top or p.top
        sample = data.sample or p.sample
        batch_size = data.batch_size or p.batch_size
        run = runtime.warmer.run(
            top=top,
            sample=sample,
            batch_size=batch_size,
            pause=0.05 if data.strategy == "lazy" else 0.0,
        )
        if data.strategy == "lazy":
            runtime.background(run)
            return Response({"status": "started"}, status_code=202)
        runtime.last_warmup = await run
        return Response(dataclasses.asdict(runtime.last_warmup))

    @delete(
        status_code=200,
        summary="Flush cached searches (of one user, or everything)",
        operation_id="flush_cache",
        responses=responses(404, 422, 503),
        opt={"audit": "cache.flush"},
    )
    async def flush(
        self,
        state: State,
        user_id: Annotated[
            str | None,
            QueryParameter(min_length=1, max_length=128, pattern=USER_ID_PATTERN.pattern),
        ] = None,
    ) -> dict[str, int]:
        return {"flushed": await _cache(state.runtime).flush(user_id)}
