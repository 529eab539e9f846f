"""The services of a process over fakes, wired like ``bootstrap.build_services`` does."""

from __future__ import annotations

from membank_server.domain.ports import Embedder, MemoryStore
from membank_server.services.audit import AuditTrail
from membank_server.services.cache_admin import CacheAdmin
from membank_server.services.collection import CollectionService
from membank_server.services.container import Resources, Services
from membank_server.services.memories import MemoryService
from membank_server.services.readiness import Readiness
from membank_server.services.tasks import Background
from membank_server.services.upkeep import Upkeep
from membank_server.services.warmup import WarmupPlan, WarmupService

__all__ = ["services_over"]


def services_over(store: MemoryStore, embedder: Embedder) -> Services:
    """No cache, keys, audit log or folder: the memory service and readiness only."""
    tasks = Background()
    memories = MemoryService(store, embedder)
    warmup = WarmupService(None, WarmupPlan(), tasks)
    return Services(
        memories=memories,
        collection=CollectionService(memories, tasks),
        cache=CacheAdmin(None, warmup, tasks),
        warmup=warmup,
        readiness=Readiness(store, embedder, warmup, tasks),
        audit=AuditTrail(None),
        upkeep=Upkeep(memories, tasks, purge_interval=60.0),
        tasks=tasks,
        resources=Resources(embedder=embedder),
    )
