"""A lock one instance of many holds at a time: a PostgreSQL session advisory lock.

Held on a connection of its own for as long as the block runs; a process that dies
drops its connection, and PostgreSQL releases the lock with it (no lease to expire).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

from membank_server.pg._connect import Database, PoolSettings

__all__ = ["advisory_lock"]


def advisory_lock(
    dsn: str, *, connect_timeout: float = 10.0
) -> Callable[[str, float], AbstractAsyncContextManager[bool]]:
    """A lock factory: ``async with lock(name, ttl) as held`` tries once to take the lock
    ``name`` (``ttl`` is unused: the lock lives with the connection)."""
    db = Database(
        dsn,
        PoolSettings(connect_timeout=connect_timeout),
        label="the schedule lock",
        application_name="membank-lock",
    )

    @contextlib.asynccontextmanager
    async def lock(name: str, ttl: float) -> AsyncIterator[bool]:
        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        async with db.session(f"take the lock {name}") as conn:
            held = bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", key))
            try:
                yield held
            finally:
                if held:
                    await conn.execute("SELECT pg_advisory_unlock($1)", key)

    return lock
