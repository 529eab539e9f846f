"""The one place that names concrete adapters and wires them together.

:func:`build_services` builds every service of one process into a frozen
:class:`~membank_server.services.container.Services`; the other builders make one
adapter each, for the CLI's commands that need just that (a store to migrate, the
audit log to read).
"""

from __future__ import annotations

from membank_server.bootstrap._backups import (
    build_backup_archive,
    build_backup_scheduler,
    build_backup_service,
    retention_of,
    scratch_store,
    snapshot_store,
)
from membank_server.bootstrap._caches import build_durable_counts, build_recall_cache
from membank_server.bootstrap._jobs import (
    batched,
    build_job_queue,
    build_language_model,
    build_pipeline,
)
from membank_server.bootstrap._observe import build_history, build_observe
from membank_server.bootstrap._search import (
    build_lexical,
    build_reranker,
    build_search,
    default_retrieval,
)
from membank_server.bootstrap._security import (
    add_data_key,
    build_audit_log,
    build_key_ring,
    build_key_store,
    build_throttle,
    retire_data_keys,
    security_dir,
)
from membank_server.bootstrap._stores import (
    SINGLE_STORES,
    build_embedder,
    build_folder_lock,
    build_single_store,
    build_store,
    embedding_dimension,
)
from membank_server.config import Settings
from membank_server.domain.ports import (
    DurableCounts,
    Embedder,
    JobQueue,
    LanguageModel,
    MemoryStore,
    SealedFields,
)
from membank_server.domain.telemetry import MetricsReader, NullTelemetry, Telemetry
from membank_server.services.access import AccessService
from membank_server.services.audit import AuditTrail
from membank_server.services.cache_admin import CacheAdmin
from membank_server.services.collection import CollectionService
from membank_server.services.container import Resources, Services
from membank_server.services.idempotency import IdempotencyIds
from membank_server.services.inputs import NOTE_KEY, Limits
from membank_server.services.memories import MemoryService
from membank_server.services.quotas import Quotas
from membank_server.services.readiness import Readiness
from membank_server.services.tasks import Background
from membank_server.services.timed_store import timed_store
from membank_server.services.upkeep import Upkeep
from membank_server.services.warmup import CacheWarmer, WarmupPlan, WarmupService

__all__ = [
    "SINGLE_STORES",
    "add_data_key",
    "build_audit_log",
    "build_backup_archive",
    "build_backup_scheduler",
    "build_backup_service",
    "build_durable_counts",
    "build_embedder",
    "build_folder_lock",
    "build_history",
    "build_job_queue",
    "build_key_ring",
    "build_key_store",
    "build_language_model",
    "build_lexical",
    "build_recall_cache",
    "build_reranker",
    "build_sealing",
    "build_search",
    "build_services",
    "build_single_store",
    "build_store",
    "build_throttle",
    "default_retrieval",
    "embedding_dimension",
    "limits_of",
    "retention_of",
    "retire_data_keys",
    "scratch_store",
    "security_dir",
    "snapshot_store",
]


def limits_of(settings: Settings) -> Limits:
    lim = settings.limits
    return Limits(
        content_max_chars=lim.content_max_chars,
        metadata_max_bytes=lim.metadata_max_bytes,
        batch_max_items=lim.batch_max_items,
        search_max_limit=lim.search_max_limit,
        list_max_limit=lim.list_max_limit,
    )


def build_services(
    settings: Settings,
    *,
    store: MemoryStore | None = None,
    embedder: Embedder | None = None,
    telemetry: Telemetry | None = None,
    reader: MetricsReader | None = None,
    job_queue: JobQueue | None = None,
    language_model: LanguageModel | None = None,
) -> Services:
    """Build every service of one process; pass an adapter to override the configured one.

    ``reader`` reads back what ``telemetry`` recorded (the same object in the server).
    """
    telemetry = telemetry or NullTelemetry()
    tasks = Background()
    store = raw = store or build_store(settings, telemetry.storage_event)
    ring = build_key_ring(settings)
    sealed = None
    if ring is not None:
        from membank_server.security.encrypted_store import EncryptedStore

        store = sealed = EncryptedStore(
            store,
            ring,
            metadata_keys=_sealed_metadata(settings),
            analyzer=build_lexical(settings).analyzer,
        )
    embedder = batched(settings, embedder or build_embedder(settings), telemetry)
    recall_cache, lock = build_recall_cache(settings, telemetry, ring)
    sec, lim, c = settings.security, settings.limits, settings.cache
    access = (
        AccessService(build_key_store(settings), cache_seconds=sec.key_cache_seconds)
        if sec.auth
        else None
    )
    idempotency = IdempotencyIds(access.keys if access is not None else None)
    reranker = build_reranker(settings)
    memories = MemoryService(
        timed_store(store, telemetry),
        embedder,
        limits_of(settings),
        telemetry,
        recall_cache=recall_cache,
        quotas=Quotas(
            lim.user_max_memories or None, lim.user_max_bytes or None, lim.usage_refresh_seconds
        ),
        idempotency=idempotency,
        search=build_search(settings, store, reranker),
    )
    rotation = None
    if sealed is not None:
        from membank_server.services.rotation import DataKeyRotation

        rotation = DataKeyRotation(sealed, memories.locks.hold, tasks=tasks)
    warmer = (
        CacheWarmer(memories, recall_cache.popular, lock)
        if recall_cache is not None and recall_cache.popular is not None
        else None
    )
    plan = WarmupPlan(
        c.warmup_strategy, c.warmup_cron, c.warmup_top, c.warmup_sample, c.warmup_batch_size
    )
    warmup = WarmupService(warmer, plan, tasks)
    audit_log = build_audit_log(settings)
    redis = c.enabled and bool(c.redis_url)
    popular = recall_cache.popular if recall_cache is not None else None
    backups = build_backup_service(
        settings,
        raw,
        embedder=embedder.model,
        dimension=embedding_dimension(settings),
        keys=access.keys if access is not None else None,
        audit=audit_log,
        counts=popular if isinstance(popular, DurableCounts) else None,
        sealed=sealed,
        telemetry=telemetry,
    )
    if ring is not None and job_queue is None:
        from membank_server.security.encrypted_queue import EncryptedJobQueue

        job_queue = EncryptedJobQueue(build_job_queue(settings), ring)
    pipeline = build_pipeline(settings, memories, telemetry, job_queue, language_model, idempotency)
    history = build_history(settings)
    sampler, observe, tunables = build_observe(
        settings, memories, telemetry, reader or NullTelemetry(), recall_cache, history,
        pipeline.workers,
    )  # fmt: skip
    return Services(
        memories=memories,
        collection=CollectionService(memories, tasks),
        cache=CacheAdmin(recall_cache, warmup, tasks),
        warmup=warmup,
        readiness=Readiness(store, embedder, warmup, tasks),
        audit=AuditTrail(audit_log),
        upkeep=Upkeep(
            memories,
            tasks,
            purge_interval=settings.server.purge_interval_seconds,
            rotation=rotation,
        ),
        tasks=tasks,
        resources=Resources(
            embedder=embedder,
            folder_lock=build_folder_lock(settings),
            audit_log=audit_log,
            recall_cache=recall_cache,
            throttle=build_throttle(settings) if sec.auth else None,
            reranker=reranker,
            configured_admin_key=sec.admin_key,
            history=history,
            job_queue=pipeline.queue,
            language_model=pipeline.model,
        ),
        idempotency=idempotency,
        access=access,
        rotation=rotation,
        sampler=sampler,
        observe=observe,
        tunables=tunables,
        backups=backups,
        backup_schedule=build_backup_scheduler(settings, backups, lock if redis else None),
        jobs=pipeline.jobs,
        workers=pipeline.workers,
        extraction=pipeline.extraction,
    )


def build_sealing(settings: Settings, store: MemoryStore) -> SealedFields | None:
    """Field encryption's view of ``store`` (its data keys), when encryption is on."""
    ring = build_key_ring(settings)
    if ring is None:
        return None
    from membank_server.security.encrypted_store import EncryptedStore

    return EncryptedStore(
        store,
        ring,
        metadata_keys=_sealed_metadata(settings),
        analyzer=build_lexical(settings).analyzer,
    )


def _sealed_metadata(settings: Settings) -> list[str]:
    """The metadata keys field encryption seals: the configured ones, and an
    extraction's reason (it quotes the conversation: sealed like content)."""
    return [*settings.security.encryption.metadata_keys, NOTE_KEY]
