"""Cache adapters of the ``Cache`` port, and the tiered cache over them.

- :class:`~membank_server.cache.local.LocalCache`: L1, in process (cachetools).
- :class:`~membank_server.cache.redis.RedisCache`: L2 or L3, Redis/Valkey behind a
  circuit breaker (:mod:`membank_server.cache.breaker`).
- :class:`~membank_server.cache.tiered.TieredCache`: read-through over the levels.
- :mod:`membank_server.cache.counters`: generation counters and popular-query counts.

Nothing is imported here, so using L1 alone never loads the Redis client.
"""

from __future__ import annotations

__all__: list[str] = []
