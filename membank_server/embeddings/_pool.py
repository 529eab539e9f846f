"""A thread pool that runs the smallest waiting job first.

A bulk import cuts thousands of texts into batches; a search needs one text. In a
FIFO pool the search waits behind every batch queued before it (seconds, for long
texts); here each job carries a priority (the size of the call it belongs to), so a
one-text query runs next, as soon as a thread is free. Among equals, first come,
first served.
"""

from __future__ import annotations

import asyncio
import itertools
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["PriorityPool"]

_T = TypeVar("_T")
_STOP = object()


class PriorityPool:
    """``threads`` worker threads taking the lowest ``priority`` job first."""

    def __init__(self, threads: int, name: str) -> None:
        self._jobs: queue.PriorityQueue[tuple[float, int, Any]] = queue.PriorityQueue()
        self._order = itertools.count()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, priority: float, fn: Callable[..., _T], *args: Any) -> asyncio.Future[_T]:
        """Queue ``fn(*args)``; its result (or exception) arrives on the caller's loop.

        Raises:
            RuntimeError: the pool is closed.
        """
        if self._closed:
            raise RuntimeError("the pool is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        self._jobs.put((priority, next(self._order), (fn, args, future, loop)))
        return future

    def _work(self) -> None:
        while True:
            _, _, job = self._jobs.get()
            if job is _STOP:
                return
            fn, args, future, loop = job
            try:
                result = fn(*args)
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting caller
                loop.call_soon_threadsafe(_settle, future, None, exc)
            else:
                loop.call_soon_threadsafe(_settle, future, result, None)

    def shutdown(self) -> None:
        """Let queued jobs finish, then stop the threads (blocks; call from a thread)."""
        self._closed = True
        for _ in self._threads:
            self._jobs.put((float("inf"), next(self._order), _STOP))
        for thread in self._threads:
            thread.join()


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
