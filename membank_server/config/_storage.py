"""Storage settings: which store (typed, :class:`StoreKind`), each store's own table,
and the rules between them."""

from __future__ import annotations

from typing import Literal

import msgspec

from membank_server.config._base import MiB, Section
from membank_server.config._process import ServerSettings
from membank_server.domain.errors import ConfigError
from membank_server.domain.storage import (
    Consistency,
    HybridPolicy,
    ReadMode,
    StoreKind,
    WriteMode,
)

__all__ = [
    "EdgeSettings",
    "HybridSettings",
    "PostgresSettings",
    "QdrantSettings",
    "StorageSettings",
    "check_storage",
]


class EdgeSettings(Section):
    path: str = "./data"
    collection: str = "memories"
    hnsw_m: int = 16
    hnsw_ef_construction: int = 100
    hnsw_ef_search: int = 128
    full_scan_threshold: int = 10_000
    optimize_on_start: bool = False
    #: Load the shard in a throwaway, memory-bounded process before the server does,
    #: so damaged files cannot crash the server (costs one extra load at start).
    check_on_start: bool = True
    #: Seconds between background flushes of the shard's segments. A write is durable
    #: once its WAL entry is synced, before any flush; a longer interval flushes less
    #: often and replays more WAL when the store opens after a crash.
    flush_interval: float = 1.0
    #: Build the HNSW index in the background (a child process on a copy of the shard,
    #: swapped in with a short pause: README "Index builds") when about this many points
    #: wait outside it; 0 builds only when asked (``POST /v1/collection/optimize``,
    #: ``membank collection optimize``) or at start (``optimize_on_start``).
    build_threshold: int = 0
    #: Seconds between two looks at the unindexed count (with ``build_threshold``).
    build_check_interval: float = 30.0
    #: Qdrant's optimizer threshold: a segment with more KB of vectors than this gets an
    #: HNSW graph when the index is built (unset: Qdrant's default, 10,000 KB).
    indexing_threshold_kb: int | None = None
    #: ``scalar``: an int8 copy of each vector in RAM is searched and the best
    #: ``quantization_oversampling`` x limit candidates are rescored from the float32
    #: vectors; ``none``: the float32 vectors only. Applies to optimized segments; a
    #: change is applied to an existing collection at its next optimize.
    quantization: Literal["scalar", "none"] = "scalar"
    quantization_oversampling: float = 2.0
    #: Where the float32 vectors live: ``ram`` (memory-mapped and kept cached) or ``disk``
    #: (memory-mapped, read on demand); ``auto``: disk with quantization on (only
    #: rescoring reads them), ram without (every search reads them).
    original_vectors: Literal["auto", "ram", "disk"] = "auto"


class QdrantSettings(Section):
    url: str | None = None
    api_key: str | None = None
    location: str | None = None
    path: str | None = None
    collection: str = "memories"
    timeout: float = 10.0
    retries: int = 3
    batch_size: int = 256
    hnsw_m: int = 16
    hnsw_ef_construction: int = 100
    hnsw_ef_search: int = 128
    quantization: Literal["scalar", "binary"] | None = None
    on_disk: bool = False
    shard_number: int | None = None
    replication_factor: int | None = None
    write_consistency_factor: int | None = None


class PostgresSettings(Section):
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


class HybridSettings(Section):
    """Two stores: a record store of truth (primary) and a vector index (secondary)."""

    primary: StoreKind = StoreKind.PGVECTOR
    secondary: StoreKind = StoreKind.QDRANT
    write: WriteMode = WriteMode.ASYNC_BOTH
    read: ReadMode = ReadMode.ROUTED
    consistency: Consistency = Consistency.EVENTUAL
    #: With read=routed: vector search goes to the primary below this many live
    #: memories and to the secondary at or above it; exact look-ups stay on the primary.
    route_threshold: int = 1_000_000
    outbox_batch: int = 256

    @property
    def policy(self) -> HybridPolicy:
        return HybridPolicy(self.write, self.read, self.consistency, self.route_threshold)


class StorageSettings(Section):
    backend: StoreKind = StoreKind.EDGE
    #: Free bytes the embedded store's disk keeps: writes that would eat into them are
    #: refused (507) while reads go on; see README "Disk space".
    disk_reserve_bytes: int = 128 * MiB
    distance: Literal["cosine", "dot", "euclid"] = "cosine"
    edge: EdgeSettings = msgspec.field(default_factory=EdgeSettings)
    qdrant: QdrantSettings = msgspec.field(default_factory=QdrantSettings)
    postgres: PostgresSettings = msgspec.field(default_factory=PostgresSettings)
    hybrid: HybridSettings = msgspec.field(default_factory=HybridSettings)

    @property
    def kinds(self) -> frozenset[StoreKind]:
        """The single stores in use: the backend, or a hybrid's two."""
        if self.backend is StoreKind.HYBRID:
            return frozenset((self.hybrid.primary, self.hybrid.secondary))
        return frozenset((self.backend,))


def check_storage(storage: StorageSettings, server: ServerSettings) -> None:
    """The storage rules, all in one place (each error one line naming the setting)."""
    if storage.disk_reserve_bytes <= 0:
        raise ConfigError(
            f"setting storage.disk_reserve_bytes must be positive, got {storage.disk_reserve_bytes}"
        )
    if storage.edge.flush_interval <= 0:
        raise ConfigError(
            "setting storage.edge.flush_interval must be positive, "
            f"got {storage.edge.flush_interval}"
        )
    e = storage.edge
    if e.build_threshold < 0:
        raise ConfigError(
            f"setting storage.edge.build_threshold must be at least 0, got {e.build_threshold}"
        )
    if e.build_check_interval <= 0:
        raise ConfigError(
            "setting storage.edge.build_check_interval must be positive, "
            f"got {e.build_check_interval}"
        )
    if e.indexing_threshold_kb is not None and e.indexing_threshold_kb <= 0:
        raise ConfigError(
            "setting storage.edge.indexing_threshold_kb must be positive, "
            f"got {e.indexing_threshold_kb}"
        )
    if not 1 <= storage.edge.quantization_oversampling <= 16:
        raise ConfigError(
            "setting storage.edge.quantization_oversampling must be between 1 and 16, "
            f"got {storage.edge.quantization_oversampling}"
        )
    used = storage.kinds
    if storage.backend is StoreKind.HYBRID:
        h = storage.hybrid
        for name, kind in (("primary", h.primary), ("secondary", h.secondary)):
            if kind is StoreKind.HYBRID:
                raise ConfigError(
                    f"setting storage.hybrid.{name} must be a single store, not hybrid"
                )
        if h.primary is h.secondary:
            raise ConfigError("storage.hybrid.primary and storage.hybrid.secondary must differ")
        h.policy  # noqa: B018 - constructing the policy checks its own rules
        if h.write is WriteMode.ASYNC_BOTH and h.primary is not StoreKind.PGVECTOR:
            raise ConfigError(
                "storage.hybrid.write=async_both keeps its outbox in PostgreSQL: "
                "storage.hybrid.primary must be pgvector"
            )
        if h.outbox_batch <= 0:
            raise ConfigError(
                f"setting storage.hybrid.outbox_batch must be positive, got {h.outbox_batch}"
            )
    if StoreKind.EDGE in used and server.workers > 1:
        raise ConfigError(
            "setting server.workers must be 1 with storage.backend=edge: an embedded "
            "Qdrant Edge folder is opened by one process only (use storage.backend=qdrant "
            "to run several workers)"
        )
    if any(kind.embedded for kind in used) and server.replicas > 1:
        raise ConfigError(
            f"setting server.replicas={server.replicas} needs a shared store: the embedded "
            "store (edge) keeps its data in one instance's folder (use storage.backend="
            "qdrant, pgvector or hybrid of those)"
        )
    if StoreKind.PGVECTOR in used and not storage.postgres.dsn:
        raise ConfigError("storage.postgres.dsn is required to use the pgvector store")
    if StoreKind.QDRANT in used:
        q = storage.qdrant
        if sum(x is not None for x in (q.url, q.location, q.path)) != 1:
            raise ConfigError(
                "storage.backend=qdrant needs exactly one of storage.qdrant.url, "
                "storage.qdrant.location (':memory:') or storage.qdrant.path"
            )
