"""The services of one process, as bootstrap builds them, and their lifespan.

``bootstrap.build_services`` returns a :class:`Services`; entry points (the HTTP app,
the CLI) take the services they need from it and run ``async with
services.running():`` around their work. Nothing is assigned after construction:
what starts late (the store on a full disk, the embedder) is tracked by the objects
that own it (:class:`Readiness`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from membank_server.domain.ports import (
    AuditLog,
    Embedder,
    FolderLock,
    JobQueue,
    LanguageModel,
    Throttle,
)
from membank_server.services.access import AccessService
from membank_server.services.audit import AuditTrail
from membank_server.services.cache_admin import CacheAdmin
from membank_server.services.collection import CollectionService
from membank_server.services.extraction import ExtractionService
from membank_server.services.idempotency import IdempotencyIds
from membank_server.services.jobs import JobService
from membank_server.services.memories import MemoryService
from membank_server.services.readiness import Readiness
from membank_server.services.recall_cache import RecallCache
from membank_server.services.tasks import Background
from membank_server.services.upkeep import Upkeep
from membank_server.services.warmup import WarmupService
from membank_server.services.workers import Workers

if TYPE_CHECKING:
    from membank_server.services.rotation import DataKeyRotation

__all__ = ["Resources", "Services", "Started"]

#: How often jobs finished longer ago than ``jobs.keep_seconds`` are forgotten.
_PURGE_JOBS_SECONDS = 3600.0


@dataclass(frozen=True)
class Started:
    #: The admin key a first start created, to be shown once (never logged).
    admin_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Resources:
    """What the process opens at start and closes at stop, beside the services."""

    embedder: Embedder
    folder_lock: FolderLock | None = None
    audit_log: AuditLog | None = None
    recall_cache: RecallCache | None = None
    throttle: Throttle | None = None
    #: ``security.admin_key``: restored if revoked, other admin keys untouched.
    configured_admin_key: str | None = field(default=None, repr=False)
    job_queue: JobQueue | None = None
    language_model: LanguageModel | None = None


@dataclass(frozen=True)
class Services:
    """The services entry points use; see the module docs."""

    memories: MemoryService
    collection: CollectionService
    cache: CacheAdmin
    warmup: WarmupService
    readiness: Readiness
    audit: AuditTrail
    upkeep: Upkeep
    tasks: Background
    resources: Resources
    idempotency: IdempotencyIds = field(default_factory=IdempotencyIds)
    #: Keys, teams and the tenant check; None when authentication is off.
    access: AccessService | None = None
    #: Data-key rotation; None without field encryption.
    rotation: DataKeyRotation | None = None
    #: Asynchronous jobs, their worker pools, and fact extraction.
    jobs: JobService | None = None
    workers: Workers | None = None
    extraction: ExtractionService | None = None

    @property
    def throttle(self) -> Throttle | None:
        return self.resources.throttle

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Started]:
        """Start what owns resources, in order, and stop it in reverse.

        The data folder's lock comes first (a second process stops before it opens
        anything); then the audit log, the keys (with the configured admin key), the
        store. A failure there stops the start, except a disk too full to open the
        store safely (see :class:`Readiness`). The embedder loads in the background.
        """
        r = self.resources
        async with AsyncExitStack() as stack:
            if r.folder_lock is not None:
                r.folder_lock.acquire()
                stack.callback(r.folder_lock.release)
            if r.audit_log is not None:
                await r.audit_log.start()
                stack.push_async_callback(r.audit_log.aclose)
            created = None
            if self.access is not None:
                await self.access.keys.start()
                stack.push_async_callback(self.access.keys.aclose)
                changes = await self.access.ensure_admin(r.configured_admin_key)
                created = changes.created_token
                await self.audit.admin_changes(changes)
                await self.idempotency.start()
            if r.throttle is not None:
                stack.push_async_callback(r.throttle.aclose)
            stack.push_async_callback(self.readiness.close_store)
            await self.readiness.open_store()
            if r.job_queue is not None:
                await r.job_queue.start()
                stack.push_async_callback(r.job_queue.aclose)
            if r.language_model is not None:
                await r.language_model.start()
                stack.push_async_callback(r.language_model.aclose)
            if r.recall_cache is not None:
                stack.push_async_callback(r.recall_cache.aclose)
            stack.push_async_callback(r.embedder.aclose)
            stack.push_async_callback(self.tasks.aclose)
            stack.push_async_callback(self.warmup.aclose)
            self.readiness.load_embedder()
            self.upkeep.start()
            if self.workers is not None:
                # Closed first: workers stop before the queue, the embedder and the store.
                await self.workers.start()
                stack.push_async_callback(self.workers.aclose)
            if self.jobs is not None:
                self.tasks.every(_PURGE_JOBS_SECONDS, self.jobs.purge_finished, "purging old jobs")
            yield Started(created)
