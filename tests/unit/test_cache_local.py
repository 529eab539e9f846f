"""LocalCache (L1): eviction policies, TTLs on a fake clock, the byte bound."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from membank_server.cache.local import EvictionPolicy, LocalCache

__all__: list[str] = []


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _cache(
    policy: EvictionPolicy = "lru", clock: Clock | None = None, **kwargs: object
) -> LocalCache:
    return LocalCache(policy=policy, clock=clock or Clock(), **kwargs)  # type: ignore[arg-type]


async def _present(cache: LocalCache, *keys: str) -> set[str]:
    # get() counts as a use, so only call it once the eviction under test is done.
    return {k for k, v in zip(keys, await cache.get_many(keys), strict=True) if v is not None}


# -- eviction order ------------------------------------------------------------


async def test_lru_evicts_the_least_recently_used() -> None:
    cache = _cache("lru", max_entries=3)
    for k in "abc":
        await cache.set(k, k.encode())
    # b is the least recently used, though a is used most often (LFU would keep a).
    for k in "aaabc":
        await cache.get(k)
    await cache.set("d", b"d")
    assert await _present(cache, *"abcd") == {"b", "c", "d"}


async def test_lfu_evicts_the_least_frequently_used() -> None:
    cache = _cache("lfu", max_entries=3)
    for k in "abc":
        await cache.set(k, k.encode())
    # a is used most but longest ago (LRU would evict it); b and c tie, b got there first.
    for k in "aaabc":
        await cache.get(k)
    await cache.set("d", b"d")
    assert await _present(cache, *"abcd") == {"a", "c", "d"}


async def test_fifo_evicts_the_first_inserted_even_if_used() -> None:
    cache = _cache("fifo", max_entries=3)
    for k in "abc":
        await cache.set(k, k.encode())
    for _ in range(3):
        await cache.get("a")
    await cache.set("d", b"d")
    assert await _present(cache, *"abcd") == {"b", "c", "d"}


def test_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="eviction policy"):
        LocalCache(policy="random")  # type: ignore[arg-type]


# -- the byte bound ------------------------------------------------------------


@pytest.mark.parametrize("policy", ["lru", "lfu", "fifo"])
async def test_max_bytes_evicts_until_the_new_value_fits(policy: EvictionPolicy) -> None:
    cache = _cache(policy, max_entries=100, max_bytes=100)
    for k in "abc":
        await cache.set(k, bytes(30))
    for k in "aabc":
        await cache.get(k)
    assert cache.nbytes == 90
    await cache.set("d", bytes(30))
    assert cache.nbytes == 90
    expected = {"lru": {"b", "c", "d"}, "lfu": {"a", "c", "d"}, "fifo": {"b", "c", "d"}}
    assert await _present(cache, *"abcd") == expected[policy]
    # One value needs room of two: two go.
    await cache.set("e", bytes(60))
    assert cache.nbytes <= 100
    assert len(cache) == 2


async def test_a_value_larger_than_max_bytes_is_not_cached_and_drops_the_old_one() -> None:
    cache = _cache(max_bytes=100)
    await cache.set("k", b"small")
    await cache.set("other", b"x")
    await cache.set("k", bytes(101))
    assert await cache.get("k") is None
    assert await cache.get("other") == b"x"


async def test_overwriting_adjusts_the_byte_count() -> None:
    cache = _cache(max_bytes=100)
    await cache.set("k", bytes(80))
    await cache.set("k", bytes(10))
    await cache.set("j", bytes(90))
    assert await cache.get_many(["k", "j"]) == [bytes(10), bytes(90)]
    assert cache.nbytes == 100


_ops = st.lists(
    st.tuples(
        st.sampled_from(["set", "get", "delete", "tick"]),
        st.sampled_from([f"k{i}" for i in range(12)]),
        st.integers(min_value=0, max_value=70),
    ),
    max_size=80,
)


@settings(max_examples=150, deadline=None)
@given(policy=st.sampled_from(["lru", "lfu", "fifo"]), ops=_ops)
async def test_bounds_hold_and_reads_never_return_a_wrong_value(
    policy: EvictionPolicy, ops: list[tuple[str, str, int]]
) -> None:
    clock = Clock()
    cache = LocalCache(policy=policy, max_entries=5, max_bytes=150, default_ttl=3.0, clock=clock)
    last: dict[str, tuple[bytes, float]] = {}
    for op, key, n in ops:
        if op == "set":
            value = bytes([n]) * n
            await cache.set(key, value)
            last[key] = (value, clock.now + 3.0)
        elif op == "get":
            got = await cache.get(key)
            if got is not None:
                value, expires = last[key]
                assert got == value
                assert clock.now < expires
        elif op == "delete":
            await cache.delete([key])
            last.pop(key, None)
        else:
            clock.now += n / 20
        assert cache.nbytes <= 150
        assert len(cache) <= 5


# -- TTL -----------------------------------------------------------------------


async def test_entries_expire_at_their_ttl() -> None:
    clock = Clock()
    cache = _cache(clock=clock, default_ttl=60.0)
    await cache.set("short", b"1", ttl=10.0)
    await cache.set("default", b"2")
    clock.now = 9.999
    assert await cache.get_many(["short", "default"]) == [b"1", b"2"]
    clock.now = 10.0
    assert await cache.get_many(["short", "default"]) == [None, b"2"]
    clock.now = 60.0
    assert await cache.get("default") is None


async def test_no_default_ttl_means_entries_live_until_evicted() -> None:
    clock = Clock()
    cache = _cache(clock=clock, default_ttl=None)
    await cache.set("k", b"v")
    clock.now = 1e9
    assert await cache.get("k") == b"v"


async def test_overwrite_restarts_the_ttl() -> None:
    clock = Clock()
    cache = _cache(clock=clock)
    await cache.set("k", b"old", ttl=5.0)
    clock.now = 4.0
    await cache.set("k", b"new", ttl=5.0)
    clock.now = 6.0
    assert await cache.get("k") == b"new"


async def test_expired_entries_give_their_bytes_back_unread() -> None:
    clock = Clock()
    cache = _cache("lfu", clock=clock, max_bytes=100)
    await cache.set("popular", bytes(60), ttl=1.0)
    for _ in range(50):
        await cache.get("popular")
    clock.now = 2.0
    assert cache.nbytes == 0
    assert len(cache) == 0


@pytest.mark.parametrize("ttl", [0, -1.0, float("nan")])
async def test_a_nonpositive_ttl_is_refused(ttl: float) -> None:
    with pytest.raises(ValueError, match="ttl"):
        await _cache().set("k", b"v", ttl=ttl)


# -- clear -----------------------------------------------------------------------


async def test_clear_by_prefix_counts_live_entries_only() -> None:
    clock = Clock()
    cache = _cache(clock=clock)
    await cache.set("s:alice:1:x", b"1")
    await cache.set("s:alice:1:y", b"2")
    await cache.set("s:alice:1:old", b"3", ttl=1.0)
    await cache.set("s:bob:1:x", b"4")
    clock.now = 5.0
    assert await cache.clear("s:alice:") == 2
    assert await cache.get_many(["s:alice:1:x", "s:bob:1:x"]) == [None, b"4"]
    assert await cache.clear() == 1
    assert len(cache) == 0
