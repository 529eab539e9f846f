"""Settings of the process: the HTTP server, request limits, the cache, the embedder."""

from __future__ import annotations

import re
from typing import Literal

from membank_server.config._base import MiB, Section
from membank_server.domain.errors import ConfigError

__all__ = [
    "CacheSettings",
    "EmbedderSettings",
    "LimitSettings",
    "ServerSettings",
    "check_positive",
    "check_process",
]


class ServerSettings(Section):
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    #: How many instances of ``membank serve`` share this deployment's data: the
    #: orchestrator's replica count (with an autoscaler, its maximum). Above 1, what
    #: one instance would keep to itself is refused: the embedded store, the SQLite
    #: key store, the audit file.
    replicas: int = 1
    max_body_bytes: int = 1 * MiB
    batch_max_body_bytes: int = 16 * MiB
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    #: None: JSON lines when stderr is not a terminal, console lines on a terminal.
    log_json: bool | None = None
    purge_interval_seconds: float = 60.0
    #: On SIGTERM, seconds in-flight requests may take to finish; the rest are answered
    #: 503 ``shutting_down`` and the process exits with status 1.
    shutdown_timeout: float = 10.0
    #: ``host:port`` of a second, unauthenticated listener serving only /metrics
    #: (for a Prometheus on a private network); None serves it on the API port only.
    metrics_address: str | None = None


class LimitSettings(Section):
    content_max_chars: int = 8192
    metadata_max_bytes: int = 16 * 1024
    batch_max_items: int = 1000
    search_max_limit: int = 100
    list_max_limit: int = 1000
    #: Objects and arrays nested deeper than this in a request body are refused (400).
    json_max_depth: int = 32
    #: Versions of history kept per memory; older events are pruned (0 keeps all).
    history_max_versions: int = 100
    #: Per-user quotas (0 lifts one): live memories, and bytes of content + metadata.
    user_max_memories: int = 1_000_000
    user_max_bytes: int = 1024**3
    #: How often a user's usage is measured again in the store (other instances' writes).
    usage_refresh_seconds: float = 300.0


class CacheSettings(Section):
    """L1 in process, L2 a shared Redis, L3 a persistent (AOF) Redis."""

    enabled: bool = True
    l1_policy: Literal["lru", "lfu", "fifo"] = "lru"
    l1_max_entries: int = 10_000
    l1_max_bytes: int = 64 * MiB
    l1_ttl: float = 60.0
    redis_url: str | None = None
    l2_ttl: float = 600.0
    l3_url: str | None = None
    l3_ttl: float = 86_400.0
    search_ttl: float = 300.0
    embedding_ttl: float = 86_400.0
    redis_timeout: float = 0.25
    #: Answer users' generations from memory while subscribed to bump announcements
    #: (no Redis round trip per cached search). Off: read from Redis every time, so no
    #: instance ever serves a result from before another's acknowledged write; on, one
    #: may for a search it handles before reading the announcement (README, Cache).
    generations_from_memory: bool = False
    popular_window_seconds: int = 3600
    warmup_strategy: Literal["eager", "lazy", "scheduled"] | None = None
    warmup_cron: str = "*/15 * * * *"
    warmup_sample: float = 0.1
    warmup_top: int = 50
    warmup_batch_size: int = 32


class EmbedderSettings(Section):
    provider: Literal["onnx", "openai"] = "onnx"
    batch_size: int = 32
    threads: int = 2
    base_url: str = "https://api.openai.com/v1"
    model: str = "text-embedding-3-small"
    api_key: str | None = None
    dimensions: int = 384
    timeout: float = 10.0
    retries: int = 3


def check_positive(values: dict[str, float]) -> None:
    for name, value in values.items():
        if value <= 0:
            raise ConfigError(f"setting {name} must be positive, got {value}")


def check_process(
    server: ServerSettings, limits: LimitSettings, cache: CacheSettings, embedder: EmbedderSettings
) -> None:
    """The rules of these sections (each error one line naming the setting)."""
    check_positive(
        {
            "server.port": server.port,
            "server.workers": server.workers,
            "server.replicas": server.replicas,
            "server.max_body_bytes": server.max_body_bytes,
            "server.batch_max_body_bytes": server.batch_max_body_bytes,
            "server.shutdown_timeout": server.shutdown_timeout,
            "limits.content_max_chars": limits.content_max_chars,
            "limits.metadata_max_bytes": limits.metadata_max_bytes,
            "limits.batch_max_items": limits.batch_max_items,
            "limits.search_max_limit": limits.search_max_limit,
            "limits.list_max_limit": limits.list_max_limit,
            "limits.json_max_depth": limits.json_max_depth,
            "limits.usage_refresh_seconds": limits.usage_refresh_seconds,
            "embedder.batch_size": embedder.batch_size,
            "embedder.threads": embedder.threads,
            "embedder.dimensions": embedder.dimensions,
        }
    )
    address = server.metrics_address
    if address is not None and not re.fullmatch(r"\[?[0-9A-Za-z.:-]+\]?:\d{1,5}", address):
        raise ConfigError(f"setting server.metrics_address must be host:port, got {address!r}")
    if server.port > 65535:
        raise ConfigError(f"setting server.port must be at most 65535, got {server.port}")
    if cache.l3_url and not cache.redis_url:
        raise ConfigError("setting cache.l3_url needs cache.redis_url (L3 sits behind L2)")
    if len(cache.warmup_cron.split()) not in (5, 6):
        raise ConfigError(
            f"setting cache.warmup_cron must be a crontab line (5 fields, or 6 with seconds "
            f"first), got {cache.warmup_cron!r}"
        )
    if not 0 < cache.warmup_sample <= 1:
        raise ConfigError(
            f"setting cache.warmup_sample must be in (0, 1], got {cache.warmup_sample}"
        )
    if embedder.provider == "openai" and not embedder.base_url:
        raise ConfigError("setting embedder.base_url is required with embedder.provider=openai")
