"""Per-user quotas: how many live memories, and how many bytes of them, one user may keep.

A user's usage is measured in the store (``MemoryStore.usage``) the first time this
process writes for the user, then kept up to date with what this process writes,
and measured again every ``refresh_seconds``. With one process per store (the
embedded default) that is exact; with several instances, each sees the others'
writes at its next measurement, so a user can overshoot by what the other instances
wrote in one refresh period. A write that would take the user past a quota is
refused whole (``QuotaExceeded``, 403) before anything is written; shrinking
changes (deletes, shorter content) always pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from membank_server.domain.errors import QuotaExceeded
from membank_server.domain.model import Usage
from membank_server.domain.ports import MemoryStore

__all__ = ["Quotas", "UsageMeter"]


@dataclass(frozen=True, slots=True)
class Quotas:
    """Limits per user; None lifts one."""

    max_memories: int | None = 1_000_000
    max_bytes: int | None = 1024**3
    refresh_seconds: float = 300.0

    @property
    def enabled(self) -> bool:
        return self.max_memories is not None or self.max_bytes is not None


class UsageMeter:
    """Usage per user as last measured plus this process's writes since (module docs)."""

    def __init__(
        self,
        store: MemoryStore,
        quotas: Quotas,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.quotas = quotas
        self._clock = clock
        self._known: dict[str, tuple[Usage, float]] = {}

    async def usage(self, user_id: str) -> Usage:
        known = self._known.get(user_id)
        if known is None or self._clock() - known[1] >= self.quotas.refresh_seconds:
            known = (await self.store.usage(user_id), self._clock())
            self._known[user_id] = known
        return known[0]

    async def check(self, user_id: str, memories: int, size: int) -> None:
        """Refuse a change of ``memories`` live memories and ``size`` bytes past a quota.

        Raises:
            QuotaExceeded: the user would hold more than a quota allows.
        """
        q = self.quotas
        if not q.enabled or (memories <= 0 and size <= 0):
            return
        now = await self.usage(user_id)
        if q.max_memories is not None and memories > 0 and now.memories + memories > q.max_memories:
            raise QuotaExceeded(
                f"user {user_id} would hold {now.memories + memories} memories; "
                f"the quota is {q.max_memories}",
                {"quota": "memories", "used": now.memories, "limit": q.max_memories},
            )
        if q.max_bytes is not None and size > 0 and now.bytes + size > q.max_bytes:
            raise QuotaExceeded(
                f"user {user_id} would store {now.bytes + size} bytes; the quota is {q.max_bytes}",
                {"quota": "bytes", "used": now.bytes, "limit": q.max_bytes},
            )

    def record(self, user_id: str, memories: int, size: int) -> None:
        """Count a change this process wrote (only for users measured already)."""
        known = self._known.get(user_id)
        if known is not None:
            usage, at = known
            self._known[user_id] = (
                Usage(max(0, usage.memories + memories), max(0, usage.bytes + size)),
                at,
            )

    def forget(self, user_id: str) -> None:
        self._known.pop(user_id, None)
