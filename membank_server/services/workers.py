"""Worker pools, one per job kind, sized by the load they see.

A worker claims up to ``batch`` items of its kind, hands them to the kind's
:class:`JobHandler` as one batch, and reports the outcomes to the queue. Every
``interval`` the :class:`Workers` look at the queue and resize each pool between
its ``min`` and ``max``:

* grow x1.5 (at least one more) when the load reaches ``scale_up`` or the queue is
  more than 80 % full;
* shrink x0.7 (at least to ``min``) when the load is under ``scale_down``.

The load of a pool is the larger of the share of its workers holding items and the
items of its kind waiting per item its workers can hold (``size x batch``): a
backlog reads as full load before any worker is busy, an empty queue as none. A
retired worker finishes its batch first.

An outcome the handler leaves to be retried (``PENDING`` that counts) becomes
``DEAD`` at ``max_attempts``; a retry waits longer each time (capped).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

from membank_server.domain.errors import MembankError, Unavailable
from membank_server.domain.jobs import Claimed, ItemOutcome, ItemState, JobKind, JobQueue
from membank_server.domain.telemetry import NullTelemetry, Telemetry

__all__ = ["JobHandler", "PoolConfig", "Wakeup", "WorkerPool", "Workers", "later"]

_log = logging.getLogger("membank.jobs")
#: Seconds between claims of an idle worker that nobody wakes (other instances' jobs).
_IDLE_POLL = 1.0
#: The queue is this full: grow whatever the load.
_FULL = 0.8


class JobHandler(Protocol):
    """Processes claimed items of one kind; never raises for an item's failure."""

    async def handle(self, items: list[Claimed]) -> list[ItemOutcome]: ...


def later(item: Claimed, error: MembankError | Exception, *, counts: bool = True) -> ItemOutcome:
    """Try ``item`` again after a backoff; ``counts`` False when the failure was not
    the item's (a store or embedder down) and costs it no attempt."""
    code = error.code if isinstance(error, MembankError) else "internal_error"
    message = error.message if isinstance(error, MembankError) else type(error).__name__
    delay = min(60.0, 0.5 * 2.0 ** max(item.attempts - 1, 0))
    return ItemOutcome(
        item.job_id, item.index, ItemState.PENDING, error_code=code, error=message,
        delay=delay, counts=counts,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class PoolConfig:
    min: int = 1
    max: int = 8
    batch: int = 64


class Wakeup:
    """Wakes idle workers of a kind when this process queued work for them."""

    def __init__(self) -> None:
        self._events = {kind: asyncio.Event() for kind in JobKind}

    def ring(self, kind: JobKind) -> None:
        self._events[kind].set()

    async def wait(self, kind: JobKind, seconds: float) -> None:
        event = self._events[kind]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)
        event.clear()


class _Worker:
    __slots__ = ("retiring", "task")

    def __init__(self) -> None:
        self.retiring = False
        self.task: asyncio.Task[None] | None = None


class WorkerPool:
    """The workers of one job kind (module docs)."""

    def __init__(
        self,
        kind: JobKind,
        handler: JobHandler,
        queue: JobQueue,
        config: PoolConfig,
        *,
        wakeup: Wakeup,
        lease_seconds: float,
        max_attempts: int,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.kind, self.handler, self.queue, self.config = kind, handler, queue, config
        self._wakeup = wakeup
        self._lease = lease_seconds
        self._max_attempts = max_attempts
        self._telemetry = telemetry or NullTelemetry()
        self._workers: list[_Worker] = []
        self.busy = 0
        #: Items finished (done or dead) since start, for the drain rate.
        self.finished = 0

    @property
    def size(self) -> int:
        return sum(not w.retiring for w in self._workers)

    def resize(self, target: int) -> None:
        live = [w for w in self._workers if not w.retiring]
        for worker in live[target:]:
            worker.retiring = True
        for _ in range(target - len(live)):
            worker = _Worker()
            worker.task = asyncio.create_task(self._work(worker), name=f"membank: {self.kind}")
            self._workers.append(worker)

    def scale(self, waiting: int, fill: float, up: float, down: float) -> int:
        """Resize by the rules of the module docs; the new size."""
        size, c = self.size, self.config
        if c.max == 0:
            return 0
        load = max(self.busy / size, min(1.0, waiting / (size * c.batch))) if size else 1.0
        target = size
        if load >= up or fill > _FULL:
            target = min(c.max, max(size + 1, math.ceil(size * 1.5)))
        elif load < down:
            target = max(c.min, math.floor(size * 0.7))
        if target != size:
            self.resize(target)
        self._telemetry.job_pool(self.kind.value, target, waiting)
        return target

    async def _work(self, me: _Worker) -> None:
        try:
            while not me.retiring:
                try:
                    claimed = await self.queue.claim(self.kind, self.config.batch, self._lease)
                except MembankError as exc:
                    _log.warning("job queue: cannot claim %s items: %s", self.kind, exc.message)
                    await asyncio.sleep(_IDLE_POLL)
                    continue
                if not claimed:
                    await self._wakeup.wait(self.kind, _IDLE_POLL)
                    continue
                self.busy += 1
                try:
                    await self._process(claimed)
                finally:
                    self.busy -= 1
        finally:
            self._workers.remove(me)

    async def _process(self, claimed: list[Claimed]) -> None:
        oldest = min(c.enqueued_at for c in claimed)
        waited = max(0.0, (datetime.now(UTC) - oldest).total_seconds())
        self._telemetry.job_batch(self.kind.value, len(claimed), waited)
        try:
            outcomes = await self.handler.handle(claimed)
        except asyncio.CancelledError:
            # Shutting down: what this worker held goes back now (without costing an
            # attempt), not when its lease runs out; a crash leaves that to the lease.
            held = [
                ItemOutcome(c.job_id, c.index, ItemState.PENDING, counts=False) for c in claimed
            ]
            with contextlib.suppress(MembankError):
                await asyncio.shield(self.queue.finish(held))
            raise
        except Exception as exc:  # noqa: BLE001 - logged, and the batch tried again later
            # A bug of ours, not the items'.
            _log.error("job handler %s failed unexpectedly", self.kind, exc_info=exc)
            outcomes = [later(c, exc) for c in claimed]
        outcomes = self._bounded(claimed, outcomes)
        try:
            await self.queue.finish(outcomes)
        except Unavailable as exc:
            # The items stay leased and are claimed again when the lease runs out.
            _log.warning("job queue: cannot record %d outcomes: %s", len(outcomes), exc.message)
            return
        tally: dict[str, int] = {}
        for o in outcomes:
            name = "retry" if o.state is ItemState.PENDING else o.state.value
            tally[name] = tally.get(name, 0) + 1
        for name, n in tally.items():
            self._telemetry.job_items(self.kind.value, name, n)
        self.finished += len(outcomes) - tally.get("retry", 0)

    def _bounded(
        self, claimed: list[Claimed], outcomes: Sequence[ItemOutcome]
    ) -> list[ItemOutcome]:
        tries = {(c.job_id, c.index): c.attempts for c in claimed}
        out = []
        for o in outcomes:
            spent = tries.get((o.job_id, o.index), 0) >= self._max_attempts
            if o.state is ItemState.PENDING and o.counts and spent:
                o = replace(o, state=ItemState.DEAD, delay=0.0)
            out.append(o)
        return out

    async def aclose(self) -> None:
        tasks = [w.task for w in self._workers if w.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


class Workers:
    """Every pool of this process and the loop that sizes them.

    Args:
        queue: The job queue.
        pools: The pools, by kind (a kind without one is not run here).
        queue_max_items: The queue's limit, for "more than 80 % full".
        scale_up: Load at which a pool grows.
        scale_down: Load under which a pool shrinks.
        interval: Seconds between two sizings.
    """

    def __init__(
        self,
        queue: JobQueue,
        pools: dict[JobKind, WorkerPool],
        *,
        queue_max_items: int,
        scale_up: float = 0.8,
        scale_down: float = 0.3,
        interval: float = 1.0,
    ) -> None:
        self.queue, self.pools = queue, pools
        self._max = queue_max_items
        self._up, self._down, self._interval = scale_up, scale_down, interval
        self._task: asyncio.Task[None] | None = None
        self._rate: tuple[float, int] = (time.monotonic(), 0)
        #: Items per second finished, over the last sizing interval.
        self.drain_rate = 0.0

    async def start(self) -> None:
        for pool in self.pools.values():
            pool.resize(pool.config.min if pool.config.max else 0)
        self._task = asyncio.create_task(self._loop(), name="membank: worker pools")

    async def tick(self) -> dict[JobKind, int]:
        """Size every pool once; the new sizes."""
        depth = await self.queue.depth()
        fill = sum(depth.values()) / self._max
        sizes = {
            kind: pool.scale(depth.get(kind, 0), fill, self._up, self._down)
            for kind, pool in self.pools.items()
        }
        now, finished = time.monotonic(), sum(p.finished for p in self.pools.values())
        then, before = self._rate
        if now > then:
            self.drain_rate = (finished - before) / (now - then)
        self._rate = (now, finished)
        return sizes

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.tick()
            except MembankError as exc:
                _log.warning("worker pools not resized: %s", exc.message)

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for pool in self.pools.values():
            await pool.aclose()
