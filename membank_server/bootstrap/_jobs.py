"""The job pipeline from settings: the queue, the language model, the pools and services."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from membank_server.config import Settings, job_backend
from membank_server.domain.jobs import JobKind, JobQueue
from membank_server.domain.llm import LanguageModel
from membank_server.domain.ports import Embedder
from membank_server.domain.storage import StoreKind
from membank_server.domain.telemetry import Telemetry
from membank_server.services.batcher import BatchingEmbedder
from membank_server.services.extraction import ExtractionService, TokenBudget
from membank_server.services.handlers import (
    EmbedStoreHandler,
    EraseUserHandler,
    ExtractHandler,
    ReindexHandler,
)
from membank_server.services.idempotency import IdempotencyIds
from membank_server.services.jobs import JobLimits, JobService
from membank_server.services.memories import MemoryService
from membank_server.services.workers import JobHandler, PoolConfig, Wakeup, WorkerPool, Workers

__all__ = ["Pipeline", "batched", "build_job_queue", "build_language_model", "build_pipeline"]


def batched(settings: Settings, embedder: Embedder, telemetry: Telemetry) -> Embedder:
    """The embedder behind the batcher (``jobs.batcher``), or as it is when that is off."""
    b = settings.jobs.batcher
    if not b.enabled:
        return embedder
    return BatchingEmbedder(
        embedder,
        max_texts=b.max_texts,
        max_wait=b.max_wait_ms / 1000,
        concurrency=b.concurrency,
        telemetry=telemetry,
    )


def build_job_queue(settings: Settings) -> JobQueue:
    s = settings.storage
    backend = job_backend(
        settings.jobs, settings.cache.l3_url, s.postgres.dsn,
        StoreKind.PGVECTOR in s.kinds, settings.server.workers,
    )  # fmt: skip
    if backend == "redis":
        from membank_server.queue.redis import RedisJobQueue

        url = settings.jobs.redis_url or settings.cache.l3_url
        assert url is not None  # checked by job_backend
        return RedisJobQueue(url, prefix=settings.jobs.redis_prefix)
    if backend == "postgres":
        from membank_server.pg import PoolSettings
        from membank_server.queue.pg import PgJobQueue

        pg = s.postgres
        assert pg.dsn is not None
        return PgJobQueue(
            pg.dsn,
            schema=pg.schema,
            table_prefix=pg.table_prefix,
            pool=PoolSettings(
                max_size=4,
                connect_timeout=pg.connect_timeout,
                command_timeout=pg.command_timeout,
                statement_timeout_ms=pg.statement_timeout_ms,
            ),
            migrate=pg.migrate_on_start,
        )
    from membank_server.queue.sqlite import SqliteJobQueue

    return SqliteJobQueue(Path(s.edge.path) / "queue" / "jobs.sqlite3")


def build_language_model(settings: Settings) -> LanguageModel | None:
    llm = settings.llm
    if llm.base_url is None:
        return None
    from membank_server.llm.openai_chat import OpenAIChat

    return OpenAIChat(
        base_url=llm.base_url,
        model=llm.model,
        api_key=llm.api_key,
        timeout=llm.timeout,
        retries=llm.retries,
        max_tokens=llm.max_tokens,
        temperature=llm.temperature,
    )


@dataclass(frozen=True)
class Pipeline:
    queue: JobQueue
    jobs: JobService
    workers: Workers
    extraction: ExtractionService
    model: LanguageModel | None


def build_pipeline(
    settings: Settings,
    memories: MemoryService,
    telemetry: Telemetry,
    queue: JobQueue | None = None,
    model: LanguageModel | None = None,
    idempotency: IdempotencyIds | None = None,
) -> Pipeline:
    """The queue, the services over it and one pool per job kind (``jobs.<kind>``)."""
    j, llm = settings.jobs, settings.llm
    queue = queue or build_job_queue(settings)
    model = model or build_language_model(settings)
    extraction = ExtractionService(
        model,
        memories,
        TokenBudget(llm.user_token_budget, llm.budget_window_seconds),
        similar=llm.similar,
        max_messages=llm.max_messages,
        message_max_chars=llm.message_max_chars,
    )
    handlers: dict[JobKind, JobHandler] = {
        JobKind.EMBED: EmbedStoreHandler(memories),
        JobKind.EXTRACT: ExtractHandler(extraction),
        JobKind.REINDEX: ReindexHandler(memories),
        JobKind.DELETE_USER: EraseUserHandler(memories),
    }
    wakeup = Wakeup()
    pools = {}
    for kind, handler in handlers.items():
        p = getattr(j, kind.value)
        pools[kind] = WorkerPool(
            kind, handler, queue, PoolConfig(p.min, p.max, p.batch),
            wakeup=wakeup, lease_seconds=j.lease_seconds, max_attempts=j.max_attempts,
            telemetry=telemetry,
        )  # fmt: skip
    workers = Workers(
        queue, pools, queue_max_items=j.queue_max_items, scale_up=j.scale_up,
        scale_down=j.scale_down, interval=j.scale_interval_seconds,
    )  # fmt: skip
    jobs = JobService(
        queue,
        memories,
        JobLimits(j.job_max_items, j.queue_max_items, j.user_max_items, j.keep_seconds),
        wakeup=wakeup,
        idempotency=idempotency,
        drain_rate=lambda: workers.drain_rate,
    )
    return Pipeline(queue, jobs, workers, extraction, model)
