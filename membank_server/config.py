"""Settings: defaults, then an optional TOML file, then ``MEMBANK_*`` environment variables.

Read once at start (:func:`load_settings`) and passed down; nothing else reads the
environment. Nested keys use a double underscore: ``MEMBANK_SERVER__PORT=9000``,
``MEMBANK_STORAGE__BACKEND=qdrant``, ``MEMBANK_STORAGE__QDRANT__URL=...``.
``MEMBANK_CONFIG`` names the TOML file when ``--config`` is not given.
A bad setting fails at start with one line naming it.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

from membank_server.domain.errors import ConfigError

__all__ = [
    "AuditSettings",
    "CacheSettings",
    "EdgeSettings",
    "EmbedderSettings",
    "EncryptionSettings",
    "HybridSettings",
    "LimitSettings",
    "LockoutSettings",
    "PostgresSettings",
    "QdrantSettings",
    "RateLimitSettings",
    "SecuritySettings",
    "ServerSettings",
    "Settings",
    "StorageSettings",
    "load_settings",
    "masked",
    "masked_tree",
    "secret_values",
]

_PREFIX = "MEMBANK_"
#: MEMBANK_ variables that are not settings: the config file, and the CLI's API key.
_NOT_SETTINGS = ("MEMBANK_CONFIG", "MEMBANK_API_KEY")
_SECRET_KEYS = ("api_key", "admin_key", "index_key", "password", "secret", "token")
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]+@")
_URL_SECRET = re.compile(r"(://[^:/@\s]*:)([^@\s]+)@")
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
    #: None: JSON lines when stderr is not a terminal, console lines on a terminal.
    log_json: bool | None = None
    purge_interval_seconds: float = 60.0
    #: On SIGTERM, seconds in-flight requests may take to finish; the rest are answered
    #: 503 ``shutting_down`` and the process exits with status 1.
    shutdown_timeout: float = 10.0
    #: ``host:port`` of a second, unauthenticated listener serving only /metrics
    #: (for a Prometheus on a private network); None serves it on the API port only.
    metrics_address: str | None = None


class LimitSettings(_Section):
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


class EdgeSettings(_Section):
    path: str = "./data"
    collection: str = "memories"
    hnsw_m: int = 16
    hnsw_ef_construct: int = 100
    hnsw_ef: int = 128
    full_scan_threshold: int = 10_000
    optimize_on_start: bool = False
    #: Load the shard in a throwaway, memory-bounded process before the server does,
    #: so damaged files cannot crash the server (costs one extra load at start).
    check_on_start: bool = True


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
    #: Free bytes the embedded store's disk keeps: writes that would eat into them are
    #: refused (507) while reads go on; see README "Disk space".
    disk_reserve_bytes: int = 128 * MiB
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


class RateLimitSettings(_Section):
    """Per API key: a sustained rate with a burst (a key may override both)."""

    enabled: bool = True
    requests_per_second: float = 200.0
    burst: int = 400


class LockoutSettings(_Section):
    """Failed authentication from one client, or against one key, locks it for a while.

    ``max_failures`` within ``window_seconds`` starts a lockout of ``base_seconds``
    that doubles with each further lockout up to ``max_seconds``; the doubling is
    forgotten after ``reset_seconds`` without failures.
    """

    enabled: bool = True
    max_failures: int = 10
    window_seconds: float = 60.0
    base_seconds: float = 30.0
    max_seconds: float = 900.0
    reset_seconds: float = 3600.0


class AuditSettings(_Section):
    """Where the append-only audit log goes: a JSON-lines file or a PostgreSQL table."""

    sink: Literal["file", "postgres"] = "file"
    #: The file sink's path; defaults to ``<security dir>/audit.log``.
    path: str | None = None
    #: The postgres sink's DSN; defaults to ``storage.postgres.dsn``.
    dsn: str | None = None
    schema: str = "membank"


class EncryptionSettings(_Section):
    """Field-level AES-256-GCM of ``content`` and chosen metadata keys (vectors stay clear).

    Keys are base64 of 32 random bytes, by id: ``keys = {k1 = "..."}`` with
    ``active = "k1"``, or a JSON ``keys_file`` holding ``active``, ``keys`` and
    ``index_key``. ``index_key`` keys the hash used to find exact duplicates.
    """

    enabled: bool = False
    keys: dict[str, str] = msgspec.field(default_factory=dict)
    active: str | None = None

    def __repr__(self) -> str:
        return f"EncryptionSettings({masked_tree(self)})"

    index_key: str | None = None
    keys_file: str | None = None
    metadata_keys: list[str] = msgspec.field(default_factory=list)


class SecuritySettings(_Section):
    """API keys bound to tenants, lockout, rate limits, audit and field encryption."""

    def __repr__(self) -> str:
        return f"SecuritySettings({masked_tree(self)})"

    auth: bool = True
    #: An admin key to accept (created on first start when absent); when unset, the
    #: first start creates one and prints it once.
    admin_key: str | None = None
    #: Folder for the key database and the audit file; defaults to storage.edge.path.
    dir: str | None = None
    keys_backend: Literal["sqlite", "postgres"] = "sqlite"
    #: The postgres key store's DSN; defaults to ``storage.postgres.dsn``.
    keys_dsn: str | None = None
    #: How long a verified key is trusted before it is looked up again (revocation delay
    #: on other instances; the instance that revokes forgets at once).
    key_cache_seconds: float = 2.0
    #: Shared lockout and rate-limit state; defaults to ``cache.redis_url``.
    redis_url: str | None = None
    #: Proxies (IPs or CIDRs) whose X-Forwarded-For is believed.
    trusted_proxies: list[str] = msgspec.field(default_factory=list)
    cors_origins: list[str] = msgspec.field(default_factory=list)
    #: Requests one key may have in flight on one instance (429 beyond), and how many
    #: of them may be batch writes: one key's bulk import cannot take every worker.
    max_concurrent_per_key: int = 32
    max_concurrent_batches_per_key: int = 2
    #: /metrics without a key. Off by default: it needs an admin key, or scrape the
    #: unauthenticated listener at ``server.metrics_address`` on a private network.
    metrics_public: bool = False
    rate_limit: RateLimitSettings = msgspec.field(default_factory=RateLimitSettings)
    lockout: LockoutSettings = msgspec.field(default_factory=LockoutSettings)
    audit: AuditSettings = msgspec.field(default_factory=AuditSettings)
    encryption: EncryptionSettings = msgspec.field(default_factory=EncryptionSettings)


class Settings(_Section):
    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    storage: StorageSettings = msgspec.field(default_factory=StorageSettings)
    embedder: EmbedderSettings = msgspec.field(default_factory=EmbedderSettings)
    limits: LimitSettings = msgspec.field(default_factory=LimitSettings)
    cache: CacheSettings = msgspec.field(default_factory=CacheSettings)
    security: SecuritySettings = msgspec.field(default_factory=SecuritySettings)


def _merge(into: dict[str, Any], new: Mapping[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(_PREFIX) or name in _NOT_SETTINGS:
            continue
        path = name[len(_PREFIX) :].lower().split("__")
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{name}: conflicts with another MEMBANK_ variable")
        node[path[-1]] = _env_value(name, value)
    return tree


def _env_value(name: str, value: str) -> Any:
    """An empty value means "unset" (so None-able settings can be cleared); JSON sets a
    list or dict: ``MEMBANK_SECURITY__TRUSTED_PROXIES='["10.0.0.0/8"]'``."""
    if value == "":
        return None
    if value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{name}: not valid JSON: {exc}") from exc
    return value


def _check(settings: Settings) -> None:
    positive = {
        "server.port": settings.server.port,
        "server.workers": settings.server.workers,
        "server.max_body_bytes": settings.server.max_body_bytes,
        "server.batch_max_body_bytes": settings.server.batch_max_body_bytes,
        "server.shutdown_timeout": settings.server.shutdown_timeout,
        "limits.content_max_chars": settings.limits.content_max_chars,
        "limits.metadata_max_bytes": settings.limits.metadata_max_bytes,
        "limits.batch_max_items": settings.limits.batch_max_items,
        "limits.search_max_limit": settings.limits.search_max_limit,
        "limits.list_max_limit": settings.limits.list_max_limit,
        "limits.json_max_depth": settings.limits.json_max_depth,
        "limits.usage_refresh_seconds": settings.limits.usage_refresh_seconds,
        "storage.disk_reserve_bytes": settings.storage.disk_reserve_bytes,
        "embedder.batch_size": settings.embedder.batch_size,
        "embedder.threads": settings.embedder.threads,
        "embedder.dimensions": settings.embedder.dimensions,
    }
    for name, value in positive.items():
        if value <= 0:
            raise ConfigError(f"setting {name} must be positive, got {value}")
    address = settings.server.metrics_address
    if address is not None and not re.fullmatch(r"\[?[0-9A-Za-z.:-]+\]?:\d{1,5}", address):
        raise ConfigError(f"setting server.metrics_address must be host:port, got {address!r}")
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
    _check_security(settings)
    if settings.embedder.provider == "openai" and not settings.embedder.base_url:
        raise ConfigError("setting embedder.base_url is required with embedder.provider=openai")


def _check_security(settings: Settings) -> None:
    sec = settings.security
    positive = {
        "security.rate_limit.requests_per_second": sec.rate_limit.requests_per_second,
        "security.rate_limit.burst": sec.rate_limit.burst,
        "security.lockout.max_failures": sec.lockout.max_failures,
        "security.lockout.window_seconds": sec.lockout.window_seconds,
        "security.lockout.base_seconds": sec.lockout.base_seconds,
        "security.lockout.max_seconds": sec.lockout.max_seconds,
        "security.max_concurrent_per_key": sec.max_concurrent_per_key,
        "security.max_concurrent_batches_per_key": sec.max_concurrent_batches_per_key,
    }
    for name, value in positive.items():
        if value <= 0:
            raise ConfigError(f"setting {name} must be positive, got {value}")
    if sec.admin_key is not None and len(sec.admin_key) < 32:
        raise ConfigError("setting security.admin_key must be at least 32 characters")
    if not sec.auth and not _loopback(settings.server.host):
        raise ConfigError(
            "setting security.auth=false serves every request as an admin: only with "
            f"server.host on loopback (127.0.0.1), not {settings.server.host!r}"
        )
    pg_dsn = settings.storage.postgres.dsn
    if sec.keys_backend == "postgres" and not (sec.keys_dsn or pg_dsn):
        raise ConfigError(
            "security.keys_backend=postgres needs security.keys_dsn or storage.postgres.dsn"
        )
    if sec.audit.sink == "postgres" and not (sec.audit.dsn or pg_dsn):
        raise ConfigError(
            "security.audit.sink=postgres needs security.audit.dsn or storage.postgres.dsn"
        )
    for cidr in sec.trusted_proxies:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError as exc:
            raise ConfigError(
                f"setting security.trusted_proxies: {cidr!r} is not an IP address or CIDR"
            ) from exc
    enc = sec.encryption
    if enc.enabled and not enc.keys_file and not (enc.keys and enc.active and enc.index_key):
        raise ConfigError(
            "security.encryption.enabled needs security.encryption.keys_file, or "
            "security.encryption.keys with .active and .index_key "
            "(make them with: membank keys generate-data-key)"
        )
    if enc.active is not None and enc.keys and enc.active not in enc.keys:
        raise ConfigError(
            f"setting security.encryption.active names {enc.active!r}, which is not in "
            "security.encryption.keys"
        )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
    return masked_tree(settings)


def masked_tree(section: msgspec.Struct) -> dict[str, Any]:
    """A settings section as a plain tree with every secret replaced by ``***``."""

    def mask(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: ("***" if v and (k == "keys" or k.endswith(_SECRET_KEYS)) else mask(v))
                for k, v in node.items()
            }
        if isinstance(node, str):
            # A password inside a URL or DSN: scheme://user:password@host
            return _URL_PASSWORD.sub(r"\1***@", node)
        return node

    return dict(mask(msgspec.to_builtins(section)))


def secret_values(settings: Settings) -> list[str]:
    """Every secret the settings hold (the values ``masked`` hides, URL passwords and
    the data keys), for the log redactor to remove wherever they might appear."""
    found: list[str] = []

    def walk(node: Any, secret: bool) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, secret or k == "keys" or k.endswith(_SECRET_KEYS))
        elif isinstance(node, list):
            for v in node:
                walk(v, secret)
        elif isinstance(node, str):
            if secret:
                found.append(node)
            found.extend(m.group(2) for m in _URL_SECRET.finditer(node))

    walk(msgspec.to_builtins(settings), False)
    keys_file = settings.security.encryption.keys_file
    if keys_file:
        try:
            ring = json.loads(Path(keys_file).read_text())
        except (OSError, ValueError):
            ring = None  # the key ring reports a bad file itself, at start
        if isinstance(ring, dict):
            walk({"keys": ring.get("keys"), "index_key": ring.get("index_key")}, True)
    return found
