"""Settings of background work: the job queue, its worker pools, the embedding batcher,
and the language model that extracts facts from conversations."""

from __future__ import annotations

from typing import Literal

import msgspec

from membank_server.config._base import Section
from membank_server.config._process import check_positive
from membank_server.domain.errors import ConfigError

__all__ = [
    "BatcherSettings",
    "JobsSettings",
    "LlmSettings",
    "WorkerPoolSettings",
    "check_jobs",
    "job_backend",
]


class WorkerPoolSettings(Section):
    """One job kind's workers: ``max`` 0 makes this process accept jobs of the kind
    without running them (an API-only instance; another instance runs them)."""

    min: int = 1
    max: int = 8
    #: Items one worker claims (and processes as one batch) at a time.
    batch: int = 64


def _pool(min_: int, max_: int, batch: int) -> WorkerPoolSettings:
    return WorkerPoolSettings(min=min_, max=max_, batch=batch)


class BatcherSettings(Section):
    """Embedding calls of concurrent requests and jobs are run together: a batch goes
    when it holds ``max_texts`` texts, or ``max_wait_ms`` after its first text came."""

    enabled: bool = True
    max_texts: int = 256
    max_wait_ms: float = 4.0
    #: Batches running at once (each splits into model batches on the embedder's threads).
    concurrency: int = 2


class JobsSettings(Section):
    #: ``auto``: Redis when ``jobs.redis_url`` (or the persistent ``cache.l3_url``) is
    #: set, else PostgreSQL when the store is pgvector, else a file in the data folder.
    backend: Literal["auto", "local", "postgres", "redis"] = "auto"
    #: The Redis (Streams) of the queue; use one that persists (AOF), never an LRU cache.
    redis_url: str | None = None
    #: Namespace of the queue's keys in that Redis (instances sharing a queue share it).
    redis_prefix: str = "membank:jobs:"
    #: Items waiting in all (pending or running); more is refused with 429.
    queue_max_items: int = 200_000
    #: Items of one user waiting; more is refused with 429.
    user_max_items: int = 50_000
    #: Items one asynchronous job may hold; a larger job is refused with 413.
    job_max_items: int = 10_000
    #: Seconds a claimed item is leased; an item of a worker that died is claimed again after.
    lease_seconds: float = 120.0
    #: Tries of an item that fails unexpectedly before it goes to the dead-letter list.
    max_attempts: int = 5
    #: Seconds a finished job (and its dead items) is kept.
    keep_seconds: float = 7 * 86_400.0
    #: How often pools are resized (grow x1.5 above scale_up, shrink x0.7 below scale_down).
    scale_interval_seconds: float = 1.0
    scale_up: float = 0.8
    scale_down: float = 0.3
    embed_store: WorkerPoolSettings = msgspec.field(default_factory=lambda: _pool(1, 8, 128))
    extract: WorkerPoolSettings = msgspec.field(default_factory=lambda: _pool(1, 4, 1))
    reindex: WorkerPoolSettings = msgspec.field(default_factory=lambda: _pool(1, 2, 1))
    delete_user: WorkerPoolSettings = msgspec.field(default_factory=lambda: _pool(1, 2, 1))
    batcher: BatcherSettings = msgspec.field(default_factory=BatcherSettings)


class LlmSettings(Section):
    """An OpenAI-compatible chat endpoint for fact extraction; off while ``base_url``
    is unset (``POST /v1/memories/extract`` then answers 400)."""

    base_url: str | None = None
    model: str = "gpt-4o-mini"
    api_key: str | None = None
    timeout: float = 30.0
    retries: int = 2
    #: Most tokens the model may answer with per call.
    max_tokens: int = 1024
    temperature: float = 0.0
    #: Tokens (prompt and answer, as the model counts them) one user may use per window.
    user_token_budget: int = 200_000
    budget_window_seconds: float = 86_400.0
    #: Similar memories of the user shown to the model per extracted fact.
    similar: int = 5
    #: Messages per extraction request, and characters per message.
    max_messages: int = 200
    message_max_chars: int = 8_000


def check_jobs(jobs: JobsSettings, llm: LlmSettings) -> None:
    """The rules of these sections (each error one line naming the setting)."""
    check_positive(
        {
            "jobs.queue_max_items": jobs.queue_max_items,
            "jobs.user_max_items": jobs.user_max_items,
            "jobs.job_max_items": jobs.job_max_items,
            "jobs.lease_seconds": jobs.lease_seconds,
            "jobs.max_attempts": jobs.max_attempts,
            "jobs.keep_seconds": jobs.keep_seconds,
            "jobs.scale_interval_seconds": jobs.scale_interval_seconds,
            "jobs.batcher.max_texts": jobs.batcher.max_texts,
            "jobs.batcher.max_wait_ms": jobs.batcher.max_wait_ms,
            "jobs.batcher.concurrency": jobs.batcher.concurrency,
            "llm.timeout": llm.timeout,
            "llm.max_tokens": llm.max_tokens,
            "llm.user_token_budget": llm.user_token_budget,
            "llm.budget_window_seconds": llm.budget_window_seconds,
            "llm.similar": llm.similar,
            "llm.max_messages": llm.max_messages,
            "llm.message_max_chars": llm.message_max_chars,
        }
    )
    if not 0 < jobs.scale_down < jobs.scale_up <= 1:
        raise ConfigError(
            "settings jobs.scale_down and jobs.scale_up must satisfy 0 < scale_down < "
            f"scale_up <= 1, got {jobs.scale_down} and {jobs.scale_up}"
        )
    for kind in ("embed_store", "extract", "reindex", "delete_user"):
        pool: WorkerPoolSettings = getattr(jobs, kind)
        if not 0 <= pool.min <= pool.max or (pool.max > 0 and pool.min < 1):
            raise ConfigError(
                f"settings jobs.{kind}.min and jobs.{kind}.max need 1 <= min <= max "
                f"(or max = 0: run none here), got {pool.min} and {pool.max}"
            )
        if pool.batch < 1:
            raise ConfigError(f"setting jobs.{kind}.batch must be positive, got {pool.batch}")
    if llm.retries < 0:
        raise ConfigError(f"setting llm.retries must not be negative, got {llm.retries}")
    if not 0 <= llm.temperature <= 2:
        raise ConfigError(f"setting llm.temperature must be in [0, 2], got {llm.temperature}")
    if llm.base_url is not None and not llm.base_url.startswith(("http://", "https://")):
        raise ConfigError("setting llm.base_url must be an http(s) URL")


def job_backend(
    jobs: JobsSettings, l3_url: str | None, pg_dsn: str | None, pgvector: bool, workers: int
) -> str:
    """Where the queue lives (``local``, ``postgres`` or ``redis``), ``auto`` resolved.

    Raises:
        ConfigError: the chosen backend lacks its setting, or the local file would be
            shared by several worker processes.
    """
    backend = jobs.backend
    redis_url = jobs.redis_url or l3_url
    if backend == "auto":
        backend = "redis" if redis_url else "postgres" if pgvector else "local"
    if backend == "redis" and not redis_url:
        raise ConfigError("jobs.backend=redis needs jobs.redis_url (or cache.l3_url)")
    if backend == "postgres" and not pg_dsn:
        raise ConfigError("jobs.backend=postgres needs storage.postgres.dsn")
    if backend == "local" and workers > 1:
        raise ConfigError(
            "setting server.workers must be 1 with the local job queue (a file in the data "
            "folder, one process): set jobs.backend to redis or postgres"
        )
    return backend
