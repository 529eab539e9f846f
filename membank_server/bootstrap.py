"""The one place that names concrete adapters and wires them together."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from membank_server.config import Settings
from membank_server.domain.ports import (
    AuditLog,
    Cache,
    Embedder,
    FolderLock,
    Generations,
    KeyStore,
    MemoryStore,
    PopularQueries,
    Throttle,
)
from membank_server.domain.telemetry import NullTelemetry, Telemetry
from membank_server.services.access import AccessService
from membank_server.services.inputs import Limits
from membank_server.services.memories import MemoryService
from membank_server.services.quotas import Quotas
from membank_server.services.recall_cache import CacheStats, RecallCache
from membank_server.services.runtime import Runtime, WarmupPlan
from membank_server.services.warmup import CacheWarmer, LockFactory, local_lock

if TYPE_CHECKING:
    from membank_server.security.crypto import KeyRing

__all__ = [
    "add_data_key",
    "build_audit_log",
    "build_embedder",
    "build_folder_lock",
    "build_key_ring",
    "build_key_store",
    "build_recall_cache",
    "build_runtime",
    "build_single_store",
    "build_store",
    "build_throttle",
    "retire_data_keys",
    "security_dir",
]

#: The default embedder's vector size (all-MiniLM-L6-v2).
ONNX_DIMENSION = 384


def build_embedder(settings: Settings) -> Embedder:
    e = settings.embedder
    if e.provider == "openai":
        from membank_server.embeddings.openai import OpenAIEmbedder

        return OpenAIEmbedder(
            base_url=e.base_url,
            model=e.model,
            api_key=e.api_key,
            dimensions=e.dimensions,
            timeout=e.timeout,
            retries=e.retries,
        )
    from membank_server.embeddings.onnx import OnnxEmbedder

    return OnnxEmbedder(batch_size=e.batch_size, threads=e.threads)


def embedding_dimension(settings: Settings) -> int:
    e = settings.embedder
    return e.dimensions if e.provider == "openai" else ONNX_DIMENSION


def build_single_store(settings: Settings, kind: str) -> MemoryStore:
    s = settings.storage
    dimension = embedding_dimension(settings)
    history_limit = settings.limits.history_max_versions or None
    if kind == "qdrant":
        from membank_server.storage.qdrant import QdrantStore

        q = s.qdrant
        return QdrantStore(
            collection=q.collection,
            dimension=dimension,
            distance=s.distance,
            url=q.url,
            api_key=q.api_key,
            location=q.location,
            path=q.path,
            timeout=q.timeout,
            retries=q.retries,
            batch_size=q.batch_size,
            hnsw_m=q.hnsw_m,
            hnsw_ef_construct=q.hnsw_ef_construct,
            hnsw_ef=q.hnsw_ef,
            quantization=q.quantization,
            on_disk=q.on_disk,
            shard_number=q.shard_number,
            replication_factor=q.replication_factor,
            write_consistency_factor=q.write_consistency_factor,
            history_limit=history_limit,
        )
    if kind == "pgvector":
        from membank_server.pg import PoolSettings
        from membank_server.storage.pgvector import PgVectorStore

        pg = s.postgres
        assert pg.dsn is not None  # checked by load_settings
        return PgVectorStore(
            pg.dsn,
            dimension=dimension,
            distance=s.distance,
            schema=pg.schema,
            table_prefix=pg.table_prefix,
            pool=PoolSettings(
                min_size=pg.pool_min,
                max_size=pg.pool_max,
                connect_timeout=pg.connect_timeout,
                command_timeout=pg.command_timeout,
                statement_timeout_ms=pg.statement_timeout_ms,
            ),
            hnsw_m=pg.hnsw_m,
            hnsw_ef_construction=pg.hnsw_ef_construction,
            hnsw_ef_search=pg.hnsw_ef_search,
            migrate=pg.migrate_on_start,
            history_limit=history_limit,
        )
    from membank_server.storage.edge import EdgeStore

    e = s.edge
    return EdgeStore(
        Path(e.path) / e.collection,
        dimension=dimension,
        distance=s.distance,
        hnsw_m=e.hnsw_m,
        hnsw_ef_construct=e.hnsw_ef_construct,
        hnsw_ef=e.hnsw_ef,
        full_scan_threshold=e.full_scan_threshold,
        optimize_on_start=e.optimize_on_start,
        history_limit=history_limit,
        disk_reserve=s.disk_reserve_bytes,
        check_on_start=e.check_on_start,
    )


def build_store(
    settings: Settings, on_event: Callable[[str, dict[str, Any]], None] | None = None
) -> MemoryStore:
    """The configured store; ``on_event`` hears a hybrid store's fallbacks and outbox work."""
    s = settings.storage
    if s.backend != "hybrid":
        return build_single_store(settings, s.backend)
    from membank_server.pg import PoolSettings
    from membank_server.storage.hybrid import HybridStore
    from membank_server.storage.outbox import PgOutbox
    from membank_server.storage.routed import RoutedStore

    h, pg = s.hybrid, s.postgres
    outbox = None
    if h.write != "primary_only" and pg.dsn is not None:
        outbox = PgOutbox(
            pg.dsn,
            schema=pg.schema,
            table_prefix=pg.table_prefix,
            pool=PoolSettings(
                max_size=4,  # its own small pool: drains, and enqueues when not in the primary
                connect_timeout=pg.connect_timeout,
                command_timeout=pg.command_timeout,
                statement_timeout_ms=pg.statement_timeout_ms,
            ),
            migrate=pg.migrate_on_start,
        )
    hybrid = HybridStore(
        build_single_store(settings, h.primary),
        build_single_store(settings, h.secondary),
        write=h.write,
        read="primary_first" if h.read == "routed" else h.read,
        consistency=h.consistency,
        outbox=outbox,
        on_event=on_event,
        drain_batch=h.outbox_batch,
    )
    if h.read != "routed":
        return hybrid
    return RoutedStore(hybrid, threshold=h.route_threshold, on_event=on_event)


def limits_of(settings: Settings) -> Limits:
    lim = settings.limits
    return Limits(
        content_max_chars=lim.content_max_chars,
        metadata_max_bytes=lim.metadata_max_bytes,
        batch_max_items=lim.batch_max_items,
        search_max_limit=lim.search_max_limit,
        list_max_limit=lim.list_max_limit,
    )


def build_recall_cache(
    settings: Settings, telemetry: Telemetry, ring: KeyRing | None = None
) -> tuple[RecallCache | None, LockFactory]:
    """The tiered cache: L1 in process, L2 the shared Redis, L3 the persistent Redis.

    Without Redis the generation counters are in process, which is correct only when
    one process sees every write: so search results are cached then only on the
    embedded store (one process by construction); query embeddings are always safe.
    """
    c = settings.cache
    if not c.enabled:
        return None, local_lock()
    from membank_server.cache.counters import (
        LocalGenerations,
        LocalPopularQueries,
        RedisGenerations,
        RedisPopularQueries,
    )
    from membank_server.cache.local import LocalCache
    from membank_server.cache.tiered import TieredCache

    levels: list[Cache] = []
    if c.l1_max_entries > 0:
        levels.append(
            LocalCache(
                policy=c.l1_policy,
                max_entries=c.l1_max_entries,
                max_bytes=c.l1_max_bytes,
                default_ttl=c.l1_ttl,
            )
        )
    generations: Generations
    popular: PopularQueries
    search_ttl: float | None = c.search_ttl
    if c.redis_url:
        from membank_server.cache.redis import RedisCache

        l2 = RedisCache(
            c.redis_url,
            name="l2",
            default_ttl=c.l2_ttl,
            connect_timeout=c.redis_timeout,
            timeout=c.redis_timeout,
        )
        shared: list[Cache] = [l2]
        if c.l3_url:
            shared.append(
                RedisCache(
                    c.l3_url,
                    name="l3",
                    default_ttl=c.l3_ttl,
                    connect_timeout=c.redis_timeout,
                    timeout=c.redis_timeout,
                )
            )
        if ring is not None:
            # Cached hits hold memory contents: sealed too, outside the process.
            from membank_server.security.encrypted_cache import EncryptedCache

            shared = [EncryptedCache(level, ring) for level in shared]
        levels.extend(shared)
        generations = RedisGenerations(l2)
        popular = RedisPopularQueries(l2, window_seconds=c.popular_window_seconds)
        lock: LockFactory = l2.lock
    else:
        lock = local_lock()
        generations = LocalGenerations()
        popular = LocalPopularQueries()
        if settings.storage.backend != "edge":
            search_ttl = None
    stats = CacheStats(telemetry)
    recall = RecallCache(
        TieredCache(levels, on_event=stats.level),
        generations,
        popular,
        search_ttl=search_ttl,
        embedding_ttl=c.embedding_ttl,
        stats=stats,
    )
    return recall, lock


def build_key_store(settings: Settings) -> KeyStore:
    sec = settings.security
    if sec.keys_backend == "postgres":
        from membank_server.security.keys_pg import PgKeyStore

        dsn = sec.keys_dsn or settings.storage.postgres.dsn
        assert dsn is not None  # checked by load_settings
        return PgKeyStore(dsn, schema=settings.storage.postgres.schema)
    from membank_server.security.keys_sqlite import SqliteKeyStore

    return SqliteKeyStore(security_dir(settings) / "keys.db")


def build_throttle(settings: Settings) -> Throttle:
    from membank_server.security.throttle import LocalThrottle, LockoutPolicy, RedisThrottle

    lo = settings.security.lockout
    policy = LockoutPolicy(
        lo.max_failures, lo.window_seconds, lo.base_seconds, lo.max_seconds, lo.reset_seconds
    )
    url = settings.security.redis_url or settings.cache.redis_url
    if url:
        return RedisThrottle(url, policy, timeout=settings.cache.redis_timeout)
    return LocalThrottle(policy)


def build_runtime(
    settings: Settings,
    *,
    store: MemoryStore | None = None,
    embedder: Embedder | None = None,
    telemetry: Telemetry | None = None,
) -> Runtime:
    """Build every service of one process; pass an adapter to override the configured one."""
    telemetry = telemetry or NullTelemetry()
    store = store or build_store(settings, telemetry.storage_event)
    ring = build_key_ring(settings)
    sealed = None
    if ring is not None:
        from membank_server.security.encrypted_store import EncryptedStore

        store = sealed = EncryptedStore(
            store, ring, metadata_keys=settings.security.encryption.metadata_keys
        )
    embedder = embedder or build_embedder(settings)
    recall_cache, lock = build_recall_cache(settings, telemetry, ring)
    lim = settings.limits
    quotas = Quotas(
        lim.user_max_memories or None, lim.user_max_bytes or None, lim.usage_refresh_seconds
    )
    memories = MemoryService(
        store, embedder, limits_of(settings), telemetry, recall_cache=recall_cache, quotas=quotas
    )
    rotation = None
    if sealed is not None:
        from membank_server.services.rotation import DataKeyRotation

        rotation = DataKeyRotation(sealed, memories.locks.hold)
    sec = settings.security
    access = (
        AccessService(build_key_store(settings), cache_seconds=sec.key_cache_seconds)
        if sec.auth
        else None
    )
    c = settings.cache
    warmer = (
        CacheWarmer(memories, recall_cache.popular, lock)
        if recall_cache is not None and recall_cache.popular is not None
        else None
    )
    plan = WarmupPlan(
        c.warmup_strategy, c.warmup_cron, c.warmup_top, c.warmup_sample, c.warmup_batch_size
    )
    return Runtime(
        store,
        embedder,
        memories,
        settings.server.purge_interval_seconds,
        warmer=warmer,
        warmup=plan,
        access=access,
        audit=build_audit_log(settings),
        throttle=build_throttle(settings) if sec.auth else None,
        rotation=rotation,
        configured_admin_key=sec.admin_key,
        folder_lock=build_folder_lock(settings),
    )


def build_folder_lock(settings: Settings) -> FolderLock | None:
    """The data folder's lock when an embedded store lives there (one process only)."""
    s = settings.storage
    used = {s.hybrid.primary, s.hybrid.secondary} if s.backend == "hybrid" else {s.backend}
    if "edge" not in used:
        return None
    from membank_server.storage.folder import FolderLock as EdgeFolderLock

    return EdgeFolderLock(Path(s.edge.path))


def security_dir(settings: Settings) -> Path:
    """Where the key database and the audit file live (the data folder by default)."""
    return Path(settings.security.dir or settings.storage.edge.path)


def build_audit_log(settings: Settings) -> AuditLog:
    a = settings.security.audit
    if a.sink == "postgres":
        from membank_server.security.audit_pg import PgAuditLog

        dsn = a.dsn or settings.storage.postgres.dsn
        assert dsn is not None  # checked by load_settings
        return PgAuditLog(dsn, schema=a.schema)
    from membank_server.security.audit_file import FileAuditLog

    return FileAuditLog(Path(a.path) if a.path else security_dir(settings) / "audit.log")


def build_key_ring(settings: Settings) -> KeyRing | None:
    """The data-key ring when field encryption is on."""
    enc = settings.security.encryption
    if not enc.enabled:
        return None
    from membank_server.security.crypto import KeyRing

    if enc.keys_file:
        return KeyRing.from_file(Path(enc.keys_file))
    assert enc.active is not None and enc.index_key is not None  # checked by load_settings
    return KeyRing.from_settings(keys=enc.keys, active=enc.active, index_key=enc.index_key)


def add_data_key(path: Path) -> str:
    """Add a new active data key to a keys file (made 0600 if missing); its id."""
    from membank_server.security.crypto import add_key_to_file

    return add_key_to_file(path)


def retire_data_keys(path: Path, keep: set[str]) -> list[str]:
    """Remove the keys file's keys not in ``keep`` (never the active one); their ids."""
    from membank_server.security.crypto import retire_keys_in_file

    return retire_keys_in_file(path, keep)
