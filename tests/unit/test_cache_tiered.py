"""TieredCache over in-process levels and a level that is down (no I/O)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from membank_server.cache.local import LocalCache
from membank_server.cache.tiered import TieredCache
from membank_server.domain.errors import CacheUnavailable

__all__: list[str] = []


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class DownCache:
    """A level whose backend cannot answer (or, with ``error``, one that has a bug)."""

    def __init__(self, name: str, error: Exception | None = None) -> None:
        self.name = name
        self.error = error or CacheUnavailable(f"{name} is down")
        self.closed = False

    async def get(self, key: str) -> bytes | None:
        raise self.error

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        raise self.error

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        raise self.error

    async def delete(self, keys: Sequence[str]) -> None:
        raise self.error

    async def clear(self, prefix: str = "") -> int:
        raise self.error

    async def aclose(self) -> None:
        self.closed = True
        raise self.error


class Events(list[tuple[str, str]]):
    def __call__(self, level: str, outcome: str) -> None:
        self.append((level, outcome))


def _levels(clock: Clock) -> tuple[LocalCache, LocalCache, LocalCache]:
    return (
        LocalCache(name="l1", default_ttl=5.0, clock=clock),
        LocalCache(name="l2", default_ttl=50.0, clock=clock),
        LocalCache(name="l3", default_ttl=500.0, clock=clock),
    )


async def test_a_hit_is_promoted_with_each_levels_default_ttl() -> None:
    clock, events = Clock(), Events()
    l1, l2, l3 = _levels(clock)
    tiered = TieredCache([l1, l2, l3], events)
    await l3.set("k", b"v", ttl=1000.0)
    assert await tiered.get("k") == b"v"
    assert events == [("l1", "miss"), ("l2", "miss"), ("l3", "hit")]
    assert await l1.get("k") == await l2.get("k") == b"v"
    clock.now = 6.0  # past L1's default TTL, within L2's
    events.clear()
    assert await tiered.get("k") == b"v"
    assert events == [("l1", "miss"), ("l2", "hit")]


async def test_get_many_asks_each_level_only_for_what_is_still_missing() -> None:
    clock, events = Clock(), Events()
    l1, l2, l3 = _levels(clock)
    tiered = TieredCache([l1, l2, l3], events)
    await l1.set("a", b"1")
    await l2.set("b", b"2")
    assert await tiered.get_many(["a", "b", "c", "a"]) == [b"1", b"2", None, b"1"]
    assert events == [
        ("l1", "hit"),
        ("l1", "miss"),
        ("l1", "miss"),
        ("l2", "hit"),
        ("l2", "miss"),
        ("l3", "miss"),
    ]
    assert await l1.get("b") == b"2"
    assert await l3.get("b") is None


async def test_a_level_that_is_down_is_a_miss_and_never_an_error() -> None:
    events = Events()
    l1, l3 = LocalCache(name="l1"), LocalCache(name="l3")
    tiered = TieredCache([l1, DownCache("l2"), l3], events)
    await tiered.set("k", b"v")
    assert events == [("l2", "error")]
    assert await l3.get("k") == b"v"
    await l1.delete(["k"])
    events.clear()
    assert await tiered.get("k") == b"v"
    assert await tiered.get_many(["k", "x"]) == [b"v", None]
    assert events == [
        ("l1", "miss"),
        ("l2", "error"),
        ("l3", "hit"),
        ("l2", "error"),  # promoting into L2 failed too
        ("l1", "hit"),
        ("l1", "miss"),
        ("l2", "error"),
        ("l3", "miss"),
    ]


async def test_every_read_of_a_level_is_timed_failed_ones_too() -> None:
    timed: list[tuple[str, float]] = []
    l1, l3 = LocalCache(name="l1"), LocalCache(name="l3")
    tiered = TieredCache([l1, DownCache("l2"), l3], on_time=lambda n, s: timed.append((n, s)))
    await l3.set("k", b"v")
    assert await tiered.get("k") == b"v"  # l1 miss, l2 down, l3 hit
    assert [n for n, _ in timed] == ["l1", "l2", "l3"]
    timed.clear()
    assert await tiered.get_many(["k", "x"]) == [b"v", None]  # l1 has k now
    assert [n for n, _ in timed] == ["l1", "l2", "l3"]  # one read a level, for "x"
    assert all(seconds >= 0 for _, seconds in timed)


async def test_a_bug_in_a_level_is_not_swallowed() -> None:
    tiered = TieredCache([LocalCache(), DownCache("l2", RuntimeError("bug"))])
    with pytest.raises(RuntimeError, match="bug"):
        await tiered.get("k")
    with pytest.raises(RuntimeError, match="bug"):
        await tiered.set("k", b"v")


async def test_delete_and_clear_reach_every_level_and_report_the_ones_they_missed() -> None:
    l1, l3 = LocalCache(name="l1"), LocalCache(name="l3")
    tiered = TieredCache([l1, DownCache("l2"), l3])
    for k in ("s:a:1", "s:a:2", "s:b:1"):
        await tiered.set(k, b"v")
    with pytest.raises(CacheUnavailable, match="l2") as info:
        await tiered.delete(["s:a:1"])
    assert info.value.details["levels"] == ["l2"]
    assert await l1.get("s:a:1") is None
    assert await l3.get("s:a:1") is None
    with pytest.raises(CacheUnavailable) as info:
        await tiered.clear("s:a:")
    assert info.value.details == {"levels": ["l2"], "removed": 1}
    assert await l3.get_many(["s:a:2", "s:b:1"]) == [None, b"v"]


async def test_clear_counts_entries_not_copies() -> None:
    clock = Clock()
    l1, l2, l3 = _levels(clock)
    tiered = TieredCache([l1, l2, l3])
    await tiered.set("a", b"1")
    await tiered.set("b", b"2")
    await l3.set("c", b"3")
    assert await tiered.clear() == 3
    assert len(l1) == len(l2) == len(l3) == 0


async def test_aclose_closes_every_level_then_reports_a_failure() -> None:
    down = DownCache("l1")
    l2 = LocalCache(name="l2")
    await l2.set("k", b"v")
    tiered = TieredCache([down, l2])
    with pytest.raises(CacheUnavailable):
        await tiered.aclose()
    assert down.closed
    assert len(l2) == 0


def test_needs_a_level() -> None:
    with pytest.raises(ValueError, match="at least one level"):
        TieredCache([])
    assert TieredCache([LocalCache()]).name == "tiered"
