"""The one place that names concrete adapters and wires them together."""

from __future__ import annotations

from pathlib import Path

from membank_server.config import Settings
from membank_server.domain.ports import Embedder, MemoryStore
from membank_server.domain.telemetry import NullTelemetry, Telemetry
from membank_server.services.inputs import Limits
from membank_server.services.memories import MemoryService
from membank_server.services.runtime import Runtime

__all__ = ["build_embedder", "build_runtime", "build_store"]

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


def build_store(settings: Settings) -> MemoryStore:
    s = settings.storage
    dimension = embedding_dimension(settings)
    if s.backend == "qdrant":
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
    )


def limits_of(settings: Settings) -> Limits:
    lim = settings.limits
    return Limits(
        content_max_chars=lim.content_max_chars,
        metadata_max_bytes=lim.metadata_max_bytes,
        batch_max_items=lim.batch_max_items,
        search_max_limit=lim.search_max_limit,
        list_max_limit=lim.list_max_limit,
    )


def build_runtime(
    settings: Settings,
    *,
    store: MemoryStore | None = None,
    embedder: Embedder | None = None,
    telemetry: Telemetry | None = None,
) -> Runtime:
    """Build every service of one process; pass an adapter to override the configured one."""
    store = store or build_store(settings)
    embedder = embedder or build_embedder(settings)
    memories = MemoryService(store, embedder, limits_of(settings), telemetry or NullTelemetry())
    return Runtime(store, embedder, memories, settings.server.purge_interval_seconds)
