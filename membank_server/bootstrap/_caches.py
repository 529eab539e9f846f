"""The recall cache from settings: L1 in process, L2 the shared Redis, L3 the persistent."""

from __future__ import annotations

from typing import TYPE_CHECKING

from membank_server.config import Settings
from membank_server.domain.ports import Cache, Generations, PopularQueries
from membank_server.domain.storage import StoreKind
from membank_server.domain.telemetry import Telemetry
from membank_server.services.recall_cache import CacheStats, RecallCache
from membank_server.services.warmup import LockFactory, local_lock

if TYPE_CHECKING:
    from membank_server.security.crypto import KeyRing

__all__ = ["build_recall_cache"]


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
        RedisPopularQueries,
    )
    from membank_server.cache.local import LocalCache
    from membank_server.cache.subscribed import SubscribedGenerations
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
        generations = SubscribedGenerations(
            l2, c.redis_url, connect_timeout=c.redis_timeout, remember=c.generations_from_memory
        )
        popular = RedisPopularQueries(l2, window_seconds=c.popular_window_seconds)
        lock: LockFactory = l2.lock
    else:
        lock = local_lock()
        generations = LocalGenerations()
        popular = LocalPopularQueries()
        if settings.storage.backend is not StoreKind.EDGE:
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
