"""Background work of one process: started by a request or at start, cancelled at shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from membank_server.domain.errors import MembankError

__all__ = ["Background"]

_log = logging.getLogger("membank.tasks")


class Background:
    """The tasks a process runs beside its requests.

    A task's ``MembankError`` is logged as a warning (the work was asked for and
    failed, the process goes on); anything else propagates to the event loop's
    handler. ``aclose`` cancels what is left and waits for it.
    """

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, work: Coroutine[Any, Any, Any], what: str) -> asyncio.Task[Any]:
        """Run ``work`` now, beside the caller."""

        async def run() -> None:
            try:
                await work
            except MembankError as exc:
                _log.warning("%s failed: %s", what, exc.message)

        task = asyncio.create_task(run(), name=f"membank: {what}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def every(
        self, seconds: float, work: Callable[[], Awaitable[object]], what: str, *, first: float = 0
    ) -> asyncio.Task[Any]:
        """Run ``work`` every ``seconds`` (after ``first`` seconds), until shutdown; a
        ``MembankError`` of one round is logged and the next round comes anyway."""

        async def loop() -> None:
            await asyncio.sleep(first)
            while True:
                try:
                    await work()
                except MembankError as exc:
                    _log.warning("%s failed, will retry: %s", what, exc.message)
                await asyncio.sleep(seconds)

        return self.spawn(loop(), what)

    async def aclose(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
