"""TimedStore: every store call timed and counted by operation and outcome.

A thin proxy in front of the configured store (the one the memory service uses):
each coroutine method of the :class:`~membank_server.domain.ports.MemoryStore`
port is timed and reported through ``Telemetry.store_operation`` with its outcome
(``ok``, ``unavailable`` for a store that could not answer or timed out, ``error``
for any other failure). Operation names come from the port, never from a request:
the label stays bounded. Everything else (``backend``, other ports the store
implements) is the inner store's, untouched.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Coroutine
from typing import Any, cast

from membank_server.domain.errors import Unavailable
from membank_server.domain.ports import MemoryStore
from membank_server.domain.telemetry import Telemetry

__all__ = ["TIMED_OPERATIONS", "timed_store"]

#: The port's operations that are timed (its other members pass through as they are).
TIMED_OPERATIONS = frozenset(
    {
        "upsert", "get", "history", "usage", "owners", "find_by_hash", "list_page", "search",
        "delete_user", "purge_expired", "count", "info", "scan", "discard",
    }
)  # fmt: skip


class _TimedStore:
    def __init__(self, inner: MemoryStore, telemetry: Telemetry) -> None:
        self._inner = inner
        self._telemetry = telemetry

    @property
    def inner(self) -> MemoryStore:
        return self._inner

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if name not in TIMED_OPERATIONS:
            return value
        return self._timed(name, value)

    def _timed(
        self, name: str, call: Callable[..., Coroutine[Any, Any, Any]]
    ) -> Callable[..., Coroutine[Any, Any, Any]]:
        report = self._telemetry.store_operation

        @functools.wraps(call)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            outcome = "error"
            try:
                result = await call(*args, **kwargs)
                outcome = "ok"
                return result
            except Unavailable:
                outcome = "unavailable"
                raise
            finally:
                report(name, time.perf_counter() - started, outcome)

        return timed


def timed_store(store: MemoryStore, telemetry: Telemetry) -> MemoryStore:
    """``store`` with its operations timed into ``telemetry``."""
    return cast(MemoryStore, _TimedStore(store, telemetry))
