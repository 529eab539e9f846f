"""How a hybrid store reads: the primary first, the fastest of two, or both merged.

``primary_first`` falls back to the secondary when the primary raises
``StorageUnavailable``; ``fastest`` races both and takes the first answer (or the
other one when the first fails); ``both`` asks both and merges by id (search keeps
each id's best score, lists merge in id order). With ``both`` the count and the
collection info come from the primary first.

A read that one store fails (``StorageUnavailable``) and the other serves is a
``fallback`` event, and ``X-Membank-Backend`` names the store that answered. Any
other error is not a store being down: it propagates.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from membank_server.domain.errors import StorageUnavailable
from membank_server.domain.ports import MemoryStore
from membank_server.domain.routing import note_backend
from membank_server.domain.storage import ReadMode

__all__ = ["HybridReads"]

_T = TypeVar("_T")


class HybridReads:
    """Reads over a primary and a secondary store.

    Args:
        primary: The store of record.
        secondary: The copy.
        mode: ``primary_first``, ``fastest`` or ``both``.
        emit: Told ``fallback`` events (kind, fields).
    """

    def __init__(
        self,
        primary: MemoryStore,
        secondary: MemoryStore,
        mode: ReadMode,
        emit: Callable[[str, dict[str, Any]], None],
    ) -> None:
        self.primary, self.secondary, self.mode = primary, secondary, mode
        self._emit = emit
        self._losers: set[asyncio.Task[Any]] = set()

    async def read(
        self,
        op: str,
        call: Callable[[MemoryStore], Awaitable[_T]],
        merge: Callable[[_T, _T], _T] | None = None,
    ) -> _T:
        """``call`` on the stores as the mode says; ``merge`` joins two answers (``both``)."""
        if self.mode is ReadMode.FASTEST:
            return await self._race(op, call)
        if self.mode is ReadMode.BOTH and merge is not None:
            return await self._merged(op, call, merge)
        return await self.primary_first(op, call)

    async def settle(self) -> None:
        """Wait for the cancelled losers of races (before the stores close)."""
        if self._losers:
            await asyncio.wait(set(self._losers))

    def _fallback(self, op: str, failed: str, error: StorageUnavailable) -> None:
        served = "secondary" if failed == "primary" else "primary"
        backend = (self.secondary if served == "secondary" else self.primary).backend
        # A degraded read says so in X-Membank-Backend: the store that really answered.
        note_backend(backend)
        self._emit(
            "fallback",
            {
                "op": op,
                "failed": failed,
                "served_by": served,
                "backend": backend,
                "error": error.message,
            },
        )

    async def primary_first(self, op: str, call: Callable[[MemoryStore], Awaitable[_T]]) -> _T:
        try:
            return await call(self.primary)
        except StorageUnavailable as exc:
            first = exc
        try:
            result = await call(self.secondary)
        except StorageUnavailable as exc:
            raise StorageUnavailable(
                f"neither store can {op}: primary: {first.message}; secondary: {exc.message}"
            ) from exc
        self._fallback(op, "primary", first)
        return result

    async def _race(self, op: str, call: Callable[[MemoryStore], Awaitable[_T]]) -> _T:
        async def run(store: MemoryStore) -> _T:
            return await call(store)

        tasks = {
            asyncio.create_task(run(self.primary)): "primary",
            asyncio.create_task(run(self.secondary)): "secondary",
        }
        pending = set(tasks)
        failed: dict[str, StorageUnavailable] = {}
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                winner: asyncio.Task[_T] | None = None
                unexpected: list[BaseException] = []
                for task in sorted(done, key=lambda t: tasks[t]):  # primary first on a tie
                    error = task.exception()
                    if error is None:
                        winner = winner or task
                    elif isinstance(error, StorageUnavailable):
                        failed[tasks[task]] = error
                    else:
                        unexpected.append(error)
                if unexpected:
                    raise unexpected[0]
                if winner is not None:
                    for name, error in failed.items():
                        self._fallback(op, name, error)
                    return winner.result()
            raise StorageUnavailable(
                f"neither store can {op}: "
                + "; ".join(f"{name}: {error.message}" for name, error in sorted(failed.items()))
            ) from failed.get("secondary")
        finally:
            # The slower store's answer is not needed: cancel it; aclose waits for it to end.
            for task in pending:
                task.cancel()
                self._losers.add(task)
                task.add_done_callback(self._forget_loser)

    def _forget_loser(self, task: asyncio.Task[Any]) -> None:
        self._losers.discard(task)
        if not task.cancelled():
            task.exception()  # the race was decided without it; mark its outcome as seen

    async def _merged(
        self, op: str, call: Callable[[MemoryStore], Awaitable[_T]], merge: Callable[[_T, _T], _T]
    ) -> _T:
        primary, secondary = await asyncio.gather(
            call(self.primary), call(self.secondary), return_exceptions=True
        )
        for outcome in (primary, secondary):
            if isinstance(outcome, BaseException) and not isinstance(outcome, StorageUnavailable):
                raise outcome
        if isinstance(primary, StorageUnavailable):
            if isinstance(secondary, StorageUnavailable):
                raise StorageUnavailable(
                    f"neither store can {op}: primary: {primary.message}; "
                    f"secondary: {secondary.message}"
                ) from secondary
            self._fallback(op, "primary", primary)
            return secondary  # type: ignore[return-value]  # not an exception: checked above
        if isinstance(secondary, StorageUnavailable):
            self._fallback(op, "secondary", secondary)
            return primary  # type: ignore[return-value]  # not an exception: checked above
        return merge(primary, secondary)  # type: ignore[arg-type]  # neither is an exception
