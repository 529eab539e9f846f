"""RedisJobQueue: the job queue in Redis Streams, with one consumer group per kind.

Each kind has a stream (``stream:<kind>``) read by the consumer group ``workers``;
an entry names an item (job, index, user), whose payload waits in ``payload:<job>``
until it is done. A claim first moves retries that are due from ``delayed:<kind>``
(a sorted set by time) back into the stream, then takes entries other consumers
left pending longer than the lease (``XAUTOCLAIM``: their process died), then new
ones (``XREADGROUP``). A finished item is acknowledged and deleted from the stream.

Every change that spans keys (a submit with its limits, recording outcomes, a
retry) is one Lua script, so it happens whole or not at all. Use a Redis that
persists (AOF, ``appendfsync everysec`` or ``always``): the queue is as durable
as the Redis it lives in, and never a cache with an eviction policy.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID, uuid4

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from membank_server.domain.errors import ConfigError, QueueFull, StorageUnavailable
from membank_server.domain.jobs import (
    Claimed,
    DeadItem,
    ItemOutcome,
    ItemResult,
    ItemState,
    Job,
    JobItem,
    JobKind,
    QueueLimits,
)
from membank_server.queue._redis_scripts import FINISH, RETRY, SUBMIT, UNDELAY

__all__ = ["RedisJobQueue"]

_T = TypeVar("_T")
_GROUP = "workers"
_ERRORS = (RedisError, OSError)


class _Result(msgspec.Struct, array_like=True, omit_defaults=True):
    state: str
    memory_id: str | None = None
    detail: bytes | None = None
    error_code: str | None = None
    error: str | None = None
    at: float = 0.0


_result = msgspec.msgpack.Decoder(_Result)


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisJobQueue:
    """The :class:`~membank_server.domain.jobs.JobQueue` port on Redis Streams (module docs).

    Args:
        url: ``redis://`` URL, database included.
        prefix: Namespace of every key.
        timeout: Seconds to wait for Redis.
    """

    backend = "redis"

    def __init__(self, url: str, *, prefix: str = "membank:jobs:", timeout: float = 5.0) -> None:
        try:
            self._redis = Redis.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout
            )
        except ValueError as exc:
            raise ConfigError(f"invalid Redis URL for the job queue: {exc}") from exc
        self.p = prefix
        self._consumer = f"{socket.gethostname()}-{os.getpid()}-{uuid4().hex[:8]}"
        self._entries: dict[tuple[UUID, int], bytes] = {}
        self._submit = self._redis.register_script(SUBMIT)
        self._finish = self._redis.register_script(FINISH)
        self._retry = self._redis.register_script(RETRY)
        self._undelay = self._redis.register_script(UNDELAY)

    async def _run(self, what: str, fn: Callable[[], Awaitable[_T]]) -> _T:
        try:
            return await fn()
        except ResponseError as exc:
            if str(exc).startswith("QUEUEFULL"):
                raise _queue_full(str(exc)) from None
            raise StorageUnavailable(f"the job queue (Redis) could not {what}: {exc}") from exc
        except _ERRORS as exc:
            message = str(exc) or type(exc).__name__
            raise StorageUnavailable(f"the job queue (Redis) could not {what}: {message}") from exc

    async def start(self) -> None:
        async def op() -> None:
            for kind in JobKind:
                try:
                    await self._redis.xgroup_create(
                        f"{self.p}stream:{kind.value}", _GROUP, id="0", mkstream=True
                    )
                except ResponseError as exc:
                    if "BUSYGROUP" not in str(exc):
                        raise
                # Consumers of processes gone, with nothing pending: forgotten.
                stream = f"{self.p}stream:{kind.value}"
                for consumer in await self._redis.xinfo_consumers(stream, _GROUP):
                    if consumer["pending"] == 0 and consumer["idle"] > 3_600_000:
                        await self._redis.xgroup_delconsumer(stream, _GROUP, consumer["name"])

        await self._run("start", op)

    async def aclose(self) -> None:
        await self._redis.aclose()

    async def submit(self, job: Job, items: Sequence[JobItem], limits: QueueLimits) -> None:
        per_user: dict[str, int] = {}
        for item in items:
            per_user[item.user_id] = per_user.get(item.user_id, 0) + 1
        args: list[Any] = [
            self.p, str(job.id), job.kind.value, msgspec.json.encode(list(job.user_ids)),
            job.created_at.timestamp(), job.total, limits.max_items, limits.max_items_per_user,
            len(per_user),
        ]  # fmt: skip
        for user_id, n in sorted(per_user.items()):
            args += [user_id, n]
        for item in items:
            args += [item.user_id, item.payload]
        await self._run("queue a job", lambda: self._submit(keys=[], args=args))

    async def claim(self, kind: JobKind, limit: int, lease_seconds: float) -> list[Claimed]:
        """Entries another consumer has held longer than ``lease_seconds`` are taken over
        (a stream keeps no lease per entry: every instance leases for the same time)."""
        stream = f"{self.p}stream:{kind.value}"

        async def op() -> list[tuple[bytes, dict[bytes, bytes]]]:
            await self._undelay(keys=[], args=[self.p, kind.value, time.time(), limit])
            claimed_now: Any = await self._redis.xautoclaim(
                stream, _GROUP, self._consumer, int(lease_seconds * 1000), "0-0", count=limit
            )
            entries: list[Any] = list(claimed_now[1])
            if len(entries) < limit:
                fresh: Any = await self._redis.xreadgroup(
                    _GROUP, self._consumer, {stream: ">"}, count=limit - len(entries)
                )
                for _, found in fresh:
                    entries.extend(found)
            return [(e, f) for e, f in entries if f]

        entries = await self._run("claim items", op)
        claimed = []
        for entry_id, fields in entries:
            job_id, index = UUID(_s(fields[b"job"])), int(fields[b"idx"])
            self._entries[(job_id, index)] = entry_id
            claimed.append((entry_id, job_id, index, _s(fields[b"user"])))
        if not claimed:
            return []

        async def load() -> list[Any]:
            async with self._redis.pipeline(transaction=False) as pipe:
                for _, job_id, index, _ in claimed:
                    pipe.hget(f"{self.p}payload:{job_id}", str(index))
                    pipe.hincrby(f"{self.p}att:{job_id}", str(index), 1)
                return list(await pipe.execute())

        loaded = await self._run("read claimed items", load)
        out = []
        for n, (entry_id, job_id, index, user_id) in enumerate(claimed):
            payload, attempts = loaded[2 * n], int(loaded[2 * n + 1])
            enqueued = int(_s(entry_id).split("-")[0]) / 1000
            out.append(
                Claimed(job_id, index, kind, user_id, payload or b"", attempts, _at(enqueued))
            )
        return out

    async def finish(self, outcomes: Sequence[ItemOutcome]) -> None:
        if not outcomes:
            return
        now = time.time()
        args: list[Any] = [self.p, now]
        for o in outcomes:
            entry = self._entries.pop((o.job_id, o.index), b"")
            result = _Result(
                o.state.value, str(o.memory_id) if o.memory_id else None, o.detail,
                o.error_code, o.error, now,
            )  # fmt: skip
            args += [str(o.job_id), o.index, entry, o.state.value, msgspec.msgpack.encode(result),
                     now + o.delay, 0 if o.counts else 1]  # fmt: skip
        await self._run("record processed items", lambda: self._finish(keys=[], args=args))

    async def retry(self, job_id: UUID, index: int | None = None) -> int:
        args: list[Any] = [self.p, str(job_id), -1 if index is None else index, time.time()]
        count = await self._run("retry dead items", lambda: self._retry(keys=[], args=args))
        return int(count)

    async def purge(
        self, job_id: UUID | None = None, *, finished_before: datetime | None = None
    ) -> int:
        async def op() -> int:
            if job_id is not None:
                ids = (
                    [str(job_id)]
                    if await self._redis.zscore(f"{self.p}finished", str(job_id)) is not None
                    else []
                )
            else:
                bound = finished_before.timestamp() if finished_before else "+inf"
                ids = [_s(i) for i in await self._redis.zrangebyscore(
                    f"{self.p}finished", "-inf", bound
                )]  # fmt: skip
            for jid in ids:
                job = await self._redis.hgetall(f"{self.p}job:{jid}")
                users = msgspec.json.decode(job.get(b"user_ids", b"[]"), type=list[str])
                dead = [
                    f"{jid}|{_s(i)}" for i in await self._redis.smembers(f"{self.p}deadjob:{jid}")
                ]
                async with self._redis.pipeline(transaction=True) as pipe:
                    for key in ("job", "payload", "att", "res", "who", "deadjob"):
                        pipe.delete(f"{self.p}{key}:{jid}")
                    for user_id in users:
                        pipe.zrem(f"{self.p}user:{user_id}:jobs", jid)
                        if dead:
                            pipe.zrem(f"{self.p}dead:user:{user_id}", *dead)
                    if dead:
                        pipe.zrem(f"{self.p}dead", *dead)
                    pipe.zrem(f"{self.p}finished", jid)
                    await pipe.execute()
            return len(ids)

        return await self._run("purge finished jobs", op)

    async def job(self, job_id: UUID) -> Job | None:
        h = await self._run("read a job", lambda: self._redis.hgetall(f"{self.p}job:{job_id}"))
        return self._job(job_id, h) if h else None

    def _job(self, job_id: UUID, h: Any) -> Job:
        users = msgspec.json.decode(h[b"user_ids"], type=list[str])
        return Job(
            job_id, JobKind(_s(h[b"kind"])), tuple(users),
            _at(float(h[b"created_at"])), _at(float(h[b"updated_at"])), int(h[b"total"]),
            int(h.get(b"done", 0)), int(h.get(b"dead", 0)),
        )  # fmt: skip

    async def items(self, job_id: UUID, offset: int, limit: int) -> list[ItemResult]:
        async def op() -> list[ItemResult]:
            job = await self._redis.hgetall(f"{self.p}job:{job_id}")
            if not job:
                return []
            indexes = [str(i) for i in range(offset, min(offset + limit, int(job[b"total"])))]
            if not indexes:
                return []
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hmget(f"{self.p}res:{job_id}", indexes)
                pipe.hmget(f"{self.p}att:{job_id}", indexes)
                pipe.hmget(f"{self.p}who:{job_id}", indexes)
                results, attempts, users = await pipe.execute()
            out = []
            for i, raw, att, user in zip(indexes, results, attempts, users, strict=True):
                r = _result.decode(raw) if raw else _Result("pending")
                out.append(
                    ItemResult(
                        int(i),
                        _s(user or b""),
                        ItemState(r.state),
                        int(att or 0),
                        UUID(r.memory_id) if r.memory_id else None,
                        r.detail,
                        r.error_code,
                        r.error,
                    )
                )
            return out

        return await self._run("read a job's items", op)

    async def jobs(self, user_id: str, limit: int, before: datetime | None = None) -> list[Job]:
        async def op() -> list[Job]:
            bound = f"({before.timestamp()}" if before else "+inf"
            ids = await self._redis.zrevrangebyscore(
                f"{self.p}user:{user_id}:jobs", bound, "-inf", start=0, num=limit
            )
            found = []
            for jid in ids:
                h = await self._redis.hgetall(f"{self.p}job:{_s(jid)}")
                if h:
                    found.append(self._job(UUID(_s(jid)), h))
            return found

        return await self._run("list jobs", op)

    async def dead(self, user_id: str | None, limit: int) -> list[DeadItem]:
        async def op() -> list[DeadItem]:
            key = f"{self.p}dead" if user_id is None else f"{self.p}dead:user:{user_id}"
            members = await self._redis.zrevrange(key, 0, limit - 1)
            out = []
            for member in members:
                jid, index = _s(member).split("|")
                job = await self._redis.hget(f"{self.p}job:{jid}", "kind")
                raw: Any = await self._redis.hget(f"{self.p}res:{jid}", index)
                if job is None or raw is None:
                    continue
                r = _result.decode(raw)
                user = await self._redis.hget(f"{self.p}who:{jid}", index)
                att = await self._redis.hget(f"{self.p}att:{jid}", index)
                out.append(
                    DeadItem(
                        UUID(jid),
                        int(index),
                        JobKind(_s(job)),
                        _s(user or b""),
                        int(att or 0),
                        r.error_code or "error",
                        r.error or "",
                        _at(r.at),
                    )
                )
            return out

        return await self._run("list dead items", op)

    async def depth(self) -> dict[JobKind, int]:
        async def op() -> list[Any]:
            return list(await self._redis.mget([f"{self.p}count:kind:{k.value}" for k in JobKind]))

        values = await self._run("measure the queue", op)
        return {k: int(v or 0) for k, v in zip(JobKind, values, strict=True)}


def _queue_full(message: str) -> QueueFull:
    # "QUEUEFULL <waiting> <limit> [user]" from the submit script.
    parts = message.split()
    waiting, limit = int(parts[1]), int(parts[2])
    if len(parts) > 3:
        return QueueFull(
            f"user {parts[3]} has {waiting} items waiting; this job would pass the limit of "
            f"{limit} per user",
            {"waiting": waiting, "limit": limit, "user_id": parts[3]},
        )
    return QueueFull(
        f"the job queue holds {waiting} items; this job would pass its limit of {limit}",
        {"waiting": waiting, "limit": limit},
    )
