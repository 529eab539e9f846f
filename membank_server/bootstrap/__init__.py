"""The one place that names concrete adapters and wires them together.

:func:`build_services` builds every service of one process into a frozen
:class:`~membank_server.services.container.Services`; the other builders make one
adapter each, for the CLI's commands that need just that (a store to migrate, the
audit log to read).
"""

from __future__ import annotations

from membank_server.bootstrap._caches import build_recall_cache
from membank_server.bootstrap._jobs import (
    batched,
    build_job_queue,
    build_language_model,
    build_pipeline,
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
from membank_server.domain.ports import Embedder, JobQueue, LanguageModel, MemoryStore
from membank_server.domain.telemetry import NullTelemetry, Telemetry
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
from membank_server.services.upkeep import Upkeep
from membank_server.services.warmup import CacheWarmer, WarmupPlan, WarmupService

__all__ = [
    "SINGLE_STORES",
    "add_data_key",
    "build_audit_log",
    "build_embedder",
    "build_folder_lock",
    "build_job_queue",
    "build_key_ring",
    "build_key_store",
    "build_language_model",
    "build_recall_cache",
    "build_services",
    "build_single_store",
    "build_store",
    "build_throttle",
    "embedding_dimension",
    "limits_of",
    "retire_data_keys",
    "security_dir",
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
    job_queue: JobQueue | None = None,
    language_model: LanguageModel | None = None,
) -> Services:
    """Build every service of one process; pass an adapter to override the configured one."""
    telemetry = telemetry or NullTelemetry()
    tasks = Background()
    store = store or build_store(settings, telemetry.storage_event)
    ring = build_key_ring(settings)
    sealed = None
    if ring is not None:
        from membank_server.security.encrypted_store import EncryptedStore

        # An extraction's reason quotes the conversation: sealed like content.
        keys = [*settings.security.encryption.metadata_keys, NOTE_KEY]
        store = sealed = EncryptedStore(store, ring, metadata_keys=keys)
    embedder = batched(settings, embedder or build_embedder(settings), telemetry)
    recall_cache, lock = build_recall_cache(settings, telemetry, ring)
    sec, lim, c = settings.security, settings.limits, settings.cache
    access = (
        AccessService(build_key_store(settings), cache_seconds=sec.key_cache_seconds)
        if sec.auth
        else None
    )
    idempotency = IdempotencyIds(access.keys if access is not None else None)
    memories = MemoryService(
        store,
        embedder,
        limits_of(settings),
        telemetry,
        recall_cache=recall_cache,
        quotas=Quotas(
            lim.user_max_memories or None, lim.user_max_bytes or None, lim.usage_refresh_seconds
        ),
        idempotency=idempotency,
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
    if ring is not None and job_queue is None:
        from membank_server.security.encrypted_queue import EncryptedJobQueue

        job_queue = EncryptedJobQueue(build_job_queue(settings), ring)
    pipeline = build_pipeline(settings, memories, telemetry, job_queue, language_model, idempotency)
    return Services(
        memories=memories,
        collection=CollectionService(memories),
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
            configured_admin_key=sec.admin_key,
            job_queue=pipeline.queue,
            language_model=pipeline.model,
        ),
        idempotency=idempotency,
        access=access,
        rotation=rotation,
        jobs=pipeline.jobs,
        workers=pipeline.workers,
        extraction=pipeline.extraction,
    )
