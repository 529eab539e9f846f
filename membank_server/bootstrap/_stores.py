"""Stores and embedders from settings: a registry by :class:`StoreKind`."""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from membank_server.bootstrap._search import build_lexical
from membank_server.config import Settings
from membank_server.domain.errors import ConfigError
from membank_server.domain.ports import Embedder, FolderLock, MemoryStore
from membank_server.domain.storage import ReadMode, StoreKind, WriteMode

__all__ = [
    "build_embedder",
    "build_folder_lock",
    "build_single_store",
    "build_store",
    "embedding_dimension",
]

#: The default embedder's vector size (all-MiniLM-L6-v2).
ONNX_DIMENSION = 384

EventSink = Callable[[str, dict[str, Any]], None]


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


def _edge(settings: Settings) -> MemoryStore:
    from membank_server.storage.edge import EdgeStore, VectorLayout

    s, e = settings.storage, settings.storage.edge
    return EdgeStore(
        Path(e.path) / e.collection,
        dimension=embedding_dimension(settings),
        distance=s.distance,
        hnsw_m=e.hnsw_m,
        hnsw_ef_construction=e.hnsw_ef_construction,
        hnsw_ef_search=e.hnsw_ef_search,
        full_scan_threshold=e.full_scan_threshold,
        optimize_on_start=e.optimize_on_start,
        history_limit=settings.limits.history_max_versions or None,
        disk_reserve=s.disk_reserve_bytes,
        check_on_start=e.check_on_start,
        lexical=build_lexical(settings),
        flush_interval=e.flush_interval,
        build_threshold=e.build_threshold,
        build_check_interval=e.build_check_interval,
        indexing_threshold_kb=e.indexing_threshold_kb,
        vectors=VectorLayout.of(e.quantization, e.quantization_oversampling, e.original_vectors),
    )


def _qdrant(settings: Settings) -> MemoryStore:
    from membank_server.storage.qdrant import QdrantStore

    s, q = settings.storage, settings.storage.qdrant
    return QdrantStore(
        collection=q.collection,
        dimension=embedding_dimension(settings),
        distance=s.distance,
        url=q.url,
        api_key=q.api_key,
        location=q.location,
        path=q.path,
        timeout=q.timeout,
        retries=q.retries,
        batch_size=q.batch_size,
        hnsw_m=q.hnsw_m,
        hnsw_ef_construction=q.hnsw_ef_construction,
        hnsw_ef_search=q.hnsw_ef_search,
        quantization=q.quantization,
        on_disk=q.on_disk,
        shard_number=q.shard_number,
        replication_factor=q.replication_factor,
        write_consistency_factor=q.write_consistency_factor,
        history_limit=settings.limits.history_max_versions or None,
        lexical=build_lexical(settings),
    )


def _pgvector(settings: Settings) -> MemoryStore:
    from membank_server.pg import PoolSettings
    from membank_server.storage.pgvector import PgVectorStore

    s, pg = settings.storage, settings.storage.postgres
    assert pg.dsn is not None  # checked by load_settings
    return PgVectorStore(
        pg.dsn,
        dimension=embedding_dimension(settings),
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
        history_limit=settings.limits.history_max_versions or None,
        lexical=build_lexical(settings),
    )


#: The single stores, by kind. A new store is one function here and one enum value.
SINGLE_STORES: dict[StoreKind, Callable[[Settings], MemoryStore]] = {
    StoreKind.EDGE: _edge,
    StoreKind.QDRANT: _qdrant,
    StoreKind.PGVECTOR: _pgvector,
}


def build_single_store(settings: Settings, kind: StoreKind | str) -> MemoryStore:
    """One store of ``kind``, configured by ``settings``.

    Raises:
        ConfigError: ``kind`` is not a single store.
    """
    try:
        build = SINGLE_STORES[StoreKind(kind)]
    except (ValueError, KeyError):
        allowed = ", ".join(SINGLE_STORES)
        raise ConfigError(f"no single store of kind {kind!r}: one of {allowed}") from None
    return build(settings)


def build_store(settings: Settings, on_event: EventSink | None = None) -> MemoryStore:
    """The configured store; ``on_event`` hears a hybrid store's fallbacks and outbox work."""
    s = settings.storage
    if s.backend is not StoreKind.HYBRID:
        return build_single_store(settings, s.backend)
    from membank_server.pg import PoolSettings
    from membank_server.storage.hybrid import HybridStore
    from membank_server.storage.outbox import PgOutbox
    from membank_server.storage.routed import RoutedStore

    h, pg, policy = s.hybrid, s.postgres, s.hybrid.policy
    outbox = None
    if policy.write is not WriteMode.PRIMARY_ONLY and pg.dsn is not None:
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
        policy,
        outbox=outbox,
        # The outbox lives in storage.postgres: a pgvector primary shares its database.
        shared_transaction=outbox is not None and h.primary is StoreKind.PGVECTOR,
        on_event=on_event,
        drain_batch=h.outbox_batch,
    )
    if policy.read is not ReadMode.ROUTED:
        return hybrid
    return RoutedStore(hybrid, threshold=policy.route_threshold, on_event=on_event)


def build_folder_lock(
    settings: Settings, kinds: Collection[StoreKind] | None = None
) -> FolderLock | None:
    """The data folder's lock when an embedded store lives there (one process only);
    ``kinds``: of these stores rather than the configured ones (a restore ``--into``)."""
    s = settings.storage
    if not any(kind.embedded for kind in (s.kinds if kinds is None else kinds)):
        return None
    from membank_server.storage.folder import FolderLock as EdgeFolderLock

    return EdgeFolderLock(Path(s.edge.path))
