"""The server's view of itself from settings: its history, census, sampler and tunables."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from membank_server.config import Settings
from membank_server.domain.jobs import JobKind
from membank_server.domain.observe import HistoryStore, StoreCensus
from membank_server.domain.ports import MemoryStore
from membank_server.domain.storage import StoreKind
from membank_server.domain.telemetry import MetricsReader, Telemetry
from membank_server.domain.tuning import Bounds
from membank_server.services.memories import MemoryService
from membank_server.services.observe import ObserveService
from membank_server.services.recall_cache import RecallCache
from membank_server.services.sampler import Sampler
from membank_server.services.tunables import Knob, TunableService
from membank_server.services.workers import WorkerPool, Workers

if TYPE_CHECKING:
    from membank_server.cache.local import LocalCache

__all__ = ["build_history", "build_observe"]

#: The file of the SQLite history, under the data folder unless observe.history_path.
HISTORY_FILE = "metrics-history.sqlite"


def build_history(settings: Settings) -> HistoryStore:
    """PostgreSQL when configured (``observe.history`` auto with a DSN, or postgres), else
    a SQLite file under the data folder."""
    o, pg = settings.observe, settings.storage.postgres
    if o.history == "postgres" or (o.history == "auto" and pg.dsn):
        from membank_server.history.pg import PgHistoryStore

        assert pg.dsn is not None  # checked at load
        return PgHistoryStore(pg.dsn, schema=pg.schema)
    from membank_server.history.sqlite import SqliteHistoryStore

    return SqliteHistoryStore(
        Path(o.history_path or Path(settings.storage.edge.path) / HISTORY_FILE)
    )


def _single(store: MemoryStore) -> MemoryStore:
    """The store that holds the records: through encryption, routing and a hybrid's primary."""
    for attr in ("inner", "hybrid", "primary"):
        inner = getattr(store, attr, None)
        if inner is not None:
            return _single(inner)
    return store


def _census(settings: Settings, store: MemoryStore) -> StoreCensus:
    # Only the modules of the store in use: another store's driver costs memory.
    s = settings.storage
    kind = s.hybrid.primary if s.backend is StoreKind.HYBRID else s.backend
    single = _single(store)
    if kind is StoreKind.EDGE:
        from membank_server.storage.census import EdgeCensus
        from membank_server.storage.edge import EdgeStore

        if isinstance(single, EdgeStore):
            return EdgeCensus(single)
    if kind is StoreKind.PGVECTOR:
        from membank_server.storage.census_pg import PgCensus
        from membank_server.storage.pgvector import PgVectorStore

        if isinstance(single, PgVectorStore):
            return PgCensus(single)
    from membank_server.storage.census import NoCensus

    return NoCensus()


def _local_level(recall: RecallCache | None) -> LocalCache | None:
    """The in-process level of the recall cache, if it has one."""
    from membank_server.cache.local import LocalCache
    from membank_server.cache.tiered import TieredCache

    cache = recall.cache if recall is not None else None
    levels = cache.levels if isinstance(cache, TieredCache) else (cache,)
    return next((c for c in levels if isinstance(c, LocalCache)), None)


def _pool_knob(pool: WorkerPool) -> tuple[Callable[[], float], Callable[[float], None]]:
    """A job pool's most workers, live: lowered, the extra workers finish and retire."""

    def write(value: float) -> None:
        pool.config = replace(pool.config, max=max(int(value), pool.config.min))
        if pool.size > pool.config.max:
            pool.resize(pool.config.max)

    return (lambda: float(pool.config.max)), write


def _knobs(
    settings: Settings, store: MemoryStore, recall: RecallCache | None, workers: Workers | None
) -> list[Knob]:
    from membank_server.storage.knobs import search_ef_knob

    o, s = settings.observe, settings.storage
    knobs: list[Knob] = []

    def knob(name: str, read: Callable[[], float], write: Callable[[float], None] | None,
             default: Bounds, help: str, integer: bool = True) -> None:  # fmt: skip
        knobs.append(Knob(name, read, write, o.bounds(name, default), help, integer))

    single = store if s.backend is not StoreKind.HYBRID else None
    ef = search_ef_knob(_single(single)) if single is not None else None
    configured_ef = {
        StoreKind.EDGE: s.edge.hnsw_ef_search,
        StoreKind.QDRANT: s.qdrant.hnsw_ef_search,
        StoreKind.PGVECTOR: s.postgres.hnsw_ef_search,
    }.get(s.backend, s.qdrant.hnsw_ef_search)
    read_ef, write_ef = ef if ef else ((lambda: float(configured_ef)), None)
    knob("search.hnsw_ef", read_ef, write_ef, Bounds(16, 1024, 32),
         "search beam: higher finds more true neighbours, costs CPU")  # fmt: skip
    l1 = _local_level(recall)
    if l1 is not None:
        knob("cache.l1_max_entries", lambda: float(l1.max_entries),
             lambda v: l1.resize(max_entries=int(v)), Bounds(100, 1_000_000, 1000),
             "entries the in-process cache holds")  # fmt: skip
        knob("cache.l1_max_bytes", lambda: float(l1.max_bytes or 0),
             lambda v: l1.resize(max_bytes=int(v)), Bounds(2**20, 4 * 2**30, 16 * 2**20),
             "bytes the in-process cache holds")  # fmt: skip
    if recall is not None and recall.search_ttl is not None:

        def set_search_ttl(v: float) -> None:
            recall.search_ttl = v

        knob("cache.search_ttl", lambda: float(recall.search_ttl or 0), set_search_ttl,
             Bounds(10, 86_400, 60), "seconds a cached search result lives", False)  # fmt: skip
    for kind, pool in (workers.pools if workers is not None else {}).items():
        if kind in (JobKind.EMBED, JobKind.EXTRACT):
            knob(f"jobs.{kind.value}.max", *_pool_knob(pool), Bounds(1, 64, 1),
                 f"most {kind.value} job workers of each server worker")  # fmt: skip
    knob("embedder.batch_size", lambda: float(settings.embedder.batch_size), None,
         Bounds(1, 256, 8), "texts embedded per batch (restart)")  # fmt: skip
    if StoreKind.PGVECTOR in s.kinds:
        knob("storage.postgres.pool_max", lambda: float(s.postgres.pool_max), None,
             Bounds(2, 100, 2), "PostgreSQL connections per worker (restart)")  # fmt: skip
    if StoreKind.EDGE not in s.kinds:
        knob("server.workers", lambda: float(settings.server.workers), None,
             Bounds(1, 2 * (os.cpu_count() or 1), 1), "worker processes (restart)")  # fmt: skip
    return knobs


def _refresher(
    telemetry: Telemetry, store: MemoryStore, recall: RecallCache | None
) -> Callable[[], None]:
    db = getattr(_single(store), "db", None)
    l1 = _local_level(recall)

    def refresh() -> None:
        usage = db.pool_usage() if db is not None else None
        if usage is not None:
            for state, value in zip(("in_use", "idle", "max"), usage, strict=True):
                telemetry.gauge("pool", ("store", state), value)
        if l1 is not None:
            telemetry.gauge("l1", ("entries",), len(l1))
            telemetry.gauge("l1", ("bytes",), l1.nbytes)
            telemetry.gauge("l1", ("max_entries",), l1.max_entries)

    return refresh


def build_observe(
    settings: Settings,
    memories: MemoryService,
    telemetry: Telemetry,
    reader: MetricsReader,
    recall: RecallCache | None,
    history: HistoryStore,
    workers: Workers | None = None,
) -> tuple[Sampler, ObserveService, TunableService]:
    o = settings.observe
    store = memories.store
    sampler = Sampler(
        history,
        reader,
        memories,
        _census(settings, store),
        telemetry,
        backend=str(settings.storage.backend.value),
        dimension=memories.embedder.dimension,
        every=o.sample_seconds,
        retention=timedelta(days=o.retention_days),
        top=o.top_tenants,
        census_every=o.census_seconds,
        refresh=_refresher(telemetry, store, recall),
    )
    observe = ObserveService(sampler, reader, o.slo.to_domain())
    return sampler, observe, TunableService(_knobs(settings, store, recall, workers), history)
