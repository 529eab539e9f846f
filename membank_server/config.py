"""Settings: defaults, then an optional TOML file, then ``MEMBANK_*`` environment variables.

Read once at start (:func:`load_settings`) and passed down; nothing else reads the
environment. Nested keys use a double underscore: ``MEMBANK_SERVER__PORT=9000``,
``MEMBANK_STORAGE__BACKEND=qdrant``, ``MEMBANK_STORAGE__QDRANT__URL=...``.
``MEMBANK_CONFIG`` names the TOML file when ``--config`` is not given.
A bad setting fails at start with one line naming it.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

from membank_server.domain.errors import ConfigError

__all__ = [
    "CacheSettings",
    "EdgeSettings",
    "EmbedderSettings",
    "HybridSettings",
    "LimitSettings",
    "PostgresSettings",
    "QdrantSettings",
    "ServerSettings",
    "Settings",
    "StorageSettings",
    "load_settings",
    "masked",
]

_PREFIX = "MEMBANK_"
_SECRET_KEYS = ("api_key", "password", "secret", "token")
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]+@")
MiB = 1024 * 1024


class _Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    max_body_bytes: int = 1 * MiB
    batch_max_body_bytes: int = 16 * MiB
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_json: bool = False
    purge_interval_seconds: float = 60.0


class LimitSettings(_Section):
    content_max_chars: int = 8192
    metadata_max_bytes: int = 16 * 1024
    batch_max_items: int = 1000
    search_max_limit: int = 100
    list_max_limit: int = 1000


class EdgeSettings(_Section):
    path: str = "./data"
    collection: str = "memories"
    hnsw_m: int = 16
    hnsw_ef_construct: int = 100
    hnsw_ef: int = 128
    full_scan_threshold: int = 10_000
    optimize_on_start: bool = False


class QdrantSettings(_Section):
    url: str | None = None
    api_key: str | None = None
    location: str | None = None
    path: str | None = None
    collection: str = "memories"
    timeout: float = 10.0
    retries: int = 3
    batch_size: int = 256
    hnsw_m: int = 16
    hnsw_ef_construct: int = 100
    hnsw_ef: int = 128
    quantization: Literal["scalar", "binary"] | None = None
    on_disk: bool = False
    shard_number: int | None = None
    replication_factor: int | None = None
    write_consistency_factor: int | None = None


class PostgresSettings(_Section):
    dsn: str | None = None
    schema: str = "membank"
    table_prefix: str = "memories"
    pool_min: int = 1
    pool_max: int = 10
    connect_timeout: float = 10.0
    command_timeout: float = 30.0
    statement_timeout_ms: int = 10_000
    hnsw_m: int = 16
    hnsw_ef_construction: int = 64
    hnsw_ef_search: int = 100
    migrate_on_start: bool = True


class HybridSettings(_Section):
    """Two stores: a record store of truth (primary) and a vector index (secondary)."""

    primary: Literal["pgvector", "edge", "qdrant"] = "pgvector"
    secondary: Literal["pgvector", "edge", "qdrant"] = "qdrant"
    write: Literal["primary_only", "both", "async_both"] = "async_both"
    read: Literal["primary_first", "fastest", "both", "routed"] = "routed"
    consistency: Literal["eventual", "strong"] = "eventual"
    #: With read=routed: vector search goes to the primary below this many live
    #: memories and to the secondary at or above it; exact look-ups stay on the primary.
    route_threshold: int = 1_000_000
    outbox_batch: int = 256


Backend = Literal["edge", "qdrant", "pgvector", "hybrid"]


class StorageSettings(_Section):
    backend: Backend = "edge"
    distance: Literal["cosine", "dot", "euclid"] = "cosine"
    edge: EdgeSettings = msgspec.field(default_factory=EdgeSettings)
    qdrant: QdrantSettings = msgspec.field(default_factory=QdrantSettings)
    postgres: PostgresSettings = msgspec.field(default_factory=PostgresSettings)
    hybrid: HybridSettings = msgspec.field(default_factory=HybridSettings)


class CacheSettings(_Section):
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
    popular_window_seconds: int = 3600
    warmup_strategy: Literal["eager", "lazy", "scheduled"] | None = None
    warmup_cron: str = "*/15 * * * *"
    warmup_sample: float = 0.1
    warmup_top: int = 50
    warmup_batch_size: int = 32


class EmbedderSettings(_Section):
    provider: Literal["onnx", "openai"] = "onnx"
    batch_size: int = 32
    threads: int = 2
    base_url: str = "https://api.openai.com/v1"
    model: str = "text-embedding-3-small"
    api_key: str | None = None
    dimensions: int = 384
    timeout: float = 10.0
    retries: int = 3


class Settings(_Section):
    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    storage: StorageSettings = msgspec.field(default_factory=StorageSettings)
    embedder: EmbedderSettings = msgspec.field(default_factory=EmbedderSettings)
    limits: LimitSettings = msgspec.field(default_factory=LimitSettings)
    cache: CacheSettings = msgspec.field(default_factory=CacheSettings)


def _merge(into: dict[str, Any], new: Mapping[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(_PREFIX) or name == f"{_PREFIX}CONFIG":
            continue
        path = name[len(_PREFIX) :].lower().split("__")
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{name}: conflicts with another MEMBANK_ variable")
        # An empty value means "unset", so None-able settings can be cleared.
        node[path[-1]] = None if value == "" else value
    return tree


def _check(settings: Settings) -> None:
    positive = {
        "server.port": settings.server.port,
        "server.workers": settings.server.workers,
        "server.max_body_bytes": settings.server.max_body_bytes,
        "server.batch_max_body_bytes": settings.server.batch_max_body_bytes,
        "limits.content_max_chars": settings.limits.content_max_chars,
        "limits.metadata_max_bytes": settings.limits.metadata_max_bytes,
        "limits.batch_max_items": settings.limits.batch_max_items,
        "limits.search_max_limit": settings.limits.search_max_limit,
        "limits.list_max_limit": settings.limits.list_max_limit,
        "embedder.batch_size": settings.embedder.batch_size,
        "embedder.threads": settings.embedder.threads,
        "embedder.dimensions": settings.embedder.dimensions,
    }
    for name, value in positive.items():
        if value <= 0:
            raise ConfigError(f"setting {name} must be positive, got {value}")
    if settings.server.port > 65535:
        raise ConfigError(f"setting server.port must be at most 65535, got {settings.server.port}")
    storage = settings.storage
    used = _stores_used(storage)
    if "edge" in used and settings.server.workers > 1:
        raise ConfigError(
            "setting server.workers must be 1 with storage.backend=edge: an embedded "
            "Qdrant Edge folder is opened by one process only (use storage.backend=qdrant "
            "to run several workers)"
        )
    if "pgvector" in used and not storage.postgres.dsn:
        raise ConfigError("storage.postgres.dsn is required to use the pgvector store")
    if storage.backend == "hybrid":
        h = storage.hybrid
        if h.primary == h.secondary:
            raise ConfigError("storage.hybrid.primary and storage.hybrid.secondary must differ")
        if h.consistency == "strong" and h.write != "both":
            raise ConfigError(
                "storage.hybrid.consistency=strong needs storage.hybrid.write=both "
                "(a 2xx only once both stores have the write)"
            )
        if h.write == "async_both" and h.primary != "pgvector":
            raise ConfigError(
                "storage.hybrid.write=async_both keeps its outbox in PostgreSQL: "
                "storage.hybrid.primary must be pgvector"
            )
    if "qdrant" in used:
        q = storage.qdrant
        if sum(x is not None for x in (q.url, q.location, q.path)) != 1:
            raise ConfigError(
                "storage.backend=qdrant needs exactly one of storage.qdrant.url, "
                "storage.qdrant.location (':memory:') or storage.qdrant.path"
            )
    c = settings.cache
    if c.l3_url and not c.redis_url:
        raise ConfigError("setting cache.l3_url needs cache.redis_url (L3 sits behind L2)")
    if len(c.warmup_cron.split()) not in (5, 6):
        raise ConfigError(
            f"setting cache.warmup_cron must be a crontab line (5 fields, or 6 with seconds "
            f"first), got {c.warmup_cron!r}"
        )
    if not 0 < c.warmup_sample <= 1:
        raise ConfigError(f"setting cache.warmup_sample must be in (0, 1], got {c.warmup_sample}")
    if settings.embedder.provider == "openai" and not settings.embedder.base_url:
        raise ConfigError("setting embedder.base_url is required with embedder.provider=openai")


def _stores_used(storage: StorageSettings) -> set[str]:
    if storage.backend == "hybrid":
        return {storage.hybrid.primary, storage.hybrid.secondary}
    return {storage.backend}


def load_settings(
    config_file: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Build the effective settings.

    Args:
        config_file: A TOML file; defaults to ``$MEMBANK_CONFIG`` when set.
        environ: The environment to read (``os.environ`` by default).

    Raises:
        ConfigError: one line naming the bad setting.
    """
    env = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    path = config_file or env.get(f"{_PREFIX}CONFIG")
    if path:
        try:
            with open(path, "rb") as fh:
                _merge(data, tomllib.load(fh))
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {path} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    _merge(data, _from_env(env))
    try:
        settings = msgspec.convert(data, Settings, strict=False)
    except msgspec.ValidationError as exc:
        where = str(exc).replace("$.", "setting ").replace("`", "")
        raise ConfigError(f"bad setting: {where}") from exc
    _check(settings)
    return settings


def masked(settings: Settings) -> dict[str, Any]:
    """The settings as a plain tree with every secret replaced by ``***``."""

    def mask(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: ("***" if v and any(s in k for s in _SECRET_KEYS) else mask(v))
                for k, v in node.items()
            }
        if isinstance(node, str):
            # A password inside a URL or DSN: scheme://user:password@host
            return _URL_PASSWORD.sub(r"\1***@", node)
        return node

    return dict(mask(msgspec.to_builtins(settings)))
