"""The Cache contract: the same behaviour from every cache level and from the tiered cache.

``local`` is LocalCache (L1); ``redis`` is RedisCache on the real Redis at ``redis_url``
under a prefix unique to the test; ``tiered`` is L1 + L2 + L3, where L2 and L3 are
RedisCaches on two databases of that server. Every Redis key a test writes is
cleared afterwards.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any
from urllib.parse import urlsplit
from uuid import uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from membank_server.cache.local import LocalCache
from membank_server.cache.redis import RedisCache
from membank_server.cache.tiered import TieredCache
from membank_server.domain.ports import Cache

__all__: list[str] = []

MakeCache = Callable[..., Cache]
# Short enough to wait out, long enough that a write and its read-back fit inside it.
_SHORT_TTL = 0.3
_PAST_SHORT_TTL = 0.6


def _redis(url: str, **kwargs: Any) -> RedisCache:
    """A RedisCache with patient timeouts.

    The production ones (0.25 s) fail fast on purpose, and a loaded 2-core CI box
    opening a hundred connections at once has missed them. These tests are about
    behaviour; the timeouts have their own tests in test_cache_redis_down.py.
    """
    return RedisCache(url, connect_timeout=5.0, timeout=5.0, **kwargs)


def _db(url: str, db: int) -> str:
    return urlsplit(url)._replace(path=f"/{db}").geturl()


@pytest.fixture(params=["local", "redis", "tiered"])
async def make_cache(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[MakeCache]:
    """Build caches of this kind; each call gets its own namespace. Cleared and closed after."""
    kind: str = request.param
    made: list[Cache] = []

    def make(default_ttl: float | None = 60.0) -> Cache:
        ns = f"test:{uuid4().hex}:"
        cache: Cache
        if kind == "local":
            cache = LocalCache(default_ttl=default_ttl)
        elif kind == "redis":
            cache = _redis(redis_url, prefix=ns, default_ttl=default_ttl)
        else:
            cache = TieredCache(
                [
                    LocalCache(default_ttl=default_ttl),
                    _redis(redis_url, name="l2", prefix=ns + "l2:", default_ttl=default_ttl),
                    _redis(
                        _db(redis_url, 1), name="l3", prefix=ns + "l3:", default_ttl=default_ttl
                    ),
                ]
            )
        made.append(cache)
        return cache

    yield make
    for cache in made:
        await cache.clear()
        await cache.aclose()


@pytest.fixture
def cache(make_cache: MakeCache) -> Cache:
    return make_cache()


async def test_a_missing_key_is_none(cache: Cache) -> None:
    assert await cache.get("nope") is None
    assert await cache.get_many(["nope", "nada"]) == [None, None]


@pytest.mark.parametrize(
    "value",
    [b"", b"\x00", bytes(range(256)) * 4, "ünïcødé ✓".encode(), b"\xff\xfe\r\n\x00end"],
    ids=["empty", "nul", "all-bytes", "utf8", "crlf"],
)
async def test_binary_values_round_trip(cache: Cache, value: bytes) -> None:
    await cache.set("k", value)
    assert await cache.get("k") == value


async def test_keys_may_hold_any_text(cache: Cache) -> None:
    keys = ["s:ålice:1:x", "a b", "glob*?[x]\\", "e:" + "f" * 200]
    for i, key in enumerate(keys):
        await cache.set(key, bytes([i]))
    assert await cache.get_many(keys) == [bytes([i]) for i in range(len(keys))]


async def test_large_values_round_trip(cache: Cache) -> None:
    value = random.Random(7).randbytes(4 * 1024 * 1024)
    await cache.set("big", value)
    assert await cache.get("big") == value


async def test_set_overwrites(cache: Cache) -> None:
    await cache.set("k", b"one")
    await cache.set("k", b"two")
    assert await cache.get("k") == b"two"


async def test_an_entry_expires_after_its_ttl(make_cache: MakeCache) -> None:
    cache = make_cache(default_ttl=60.0)
    await cache.set("short", b"1", ttl=_SHORT_TTL)
    await cache.set("default", b"2")
    assert await cache.get("short") == b"1"
    await asyncio.sleep(_PAST_SHORT_TTL)
    assert await cache.get_many(["short", "default"]) == [None, b"2"]


async def test_the_default_ttl_applies_when_set_gives_none(make_cache: MakeCache) -> None:
    cache = make_cache(default_ttl=_SHORT_TTL)
    await cache.set("k", b"v")
    await cache.set("longer", b"w", ttl=60.0)
    await asyncio.sleep(_PAST_SHORT_TTL)
    assert await cache.get_many(["k", "longer"]) == [None, b"w"]


@pytest.mark.parametrize("ttl", [0, -1.0])
async def test_a_nonpositive_ttl_is_refused(cache: Cache, ttl: float) -> None:
    with pytest.raises(ValueError, match="ttl"):
        await cache.set("k", b"v", ttl=ttl)
    assert await cache.get("k") is None


async def test_get_many_keeps_order_and_duplicates(cache: Cache) -> None:
    await cache.set("a", b"1")
    await cache.set("c", b"3")
    assert await cache.get_many(["c", "b", "a", "c"]) == [b"3", None, b"1", b"3"]
    assert await cache.get_many([]) == []


async def test_delete_removes_only_the_named_keys(cache: Cache) -> None:
    for k in "abc":
        await cache.set(k, k.encode())
    await cache.delete(["a", "c", "never-set"])
    await cache.delete([])
    assert await cache.get_many(["a", "b", "c"]) == [None, b"b", None]


async def test_clear_by_prefix_leaves_other_prefixes(cache: Cache) -> None:
    for i in range(3):
        await cache.set(f"s:alice:{i}", b"a")
    await cache.set("s:alicia:0", b"x")
    await cache.set("s:bob:0", b"b")
    await cache.set("e:alice", b"e")
    assert await cache.clear("s:alice:") == 3
    left = await cache.get_many(["s:alice:0", "s:alicia:0", "s:bob:0", "e:alice"])
    assert left == [None, b"x", b"b", b"e"]
    assert await cache.clear("s:") == 2
    assert await cache.clear("s:") == 0


async def test_clear_treats_glob_characters_literally(cache: Cache) -> None:
    await cache.set("a*1", b"1")
    await cache.set("a*2", b"2")
    await cache.set("ab", b"3")
    await cache.set("a[b]", b"4")
    await cache.set("a?", b"5")
    assert await cache.clear("a*") == 2
    assert await cache.clear("a[") == 1
    assert await cache.get_many(["ab", "a?"]) == [b"3", b"5"]


async def test_clear_everything_stays_inside_this_cache(make_cache: MakeCache) -> None:
    mine, theirs = make_cache(), make_cache()
    await mine.set("k", b"mine")
    await mine.set("j", b"mine")
    await theirs.set("k", b"theirs")
    assert await mine.get("k") == b"mine"
    assert await mine.clear() == 2
    assert await mine.get("k") is None
    assert await theirs.get("k") == b"theirs"


_keys = st.sampled_from(["a", "b", "c", "s:1:x", "s:1:y", "s:2:x"])
_ops = st.lists(
    st.one_of(
        st.tuples(st.just("set"), _keys, st.binary(max_size=40)),
        st.tuples(st.just("get"), _keys, st.just(b"")),
        st.tuples(st.just("delete"), _keys, st.just(b"")),
        st.tuples(st.just("clear"), st.sampled_from(["", "s:", "s:1:", "a"]), st.just(b"")),
    ),
    max_size=25,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=_ops)
async def test_behaves_like_a_dict_without_ttls(
    make_cache: MakeCache, ops: list[tuple[str, str, bytes]]
) -> None:
    cache = make_cache()
    model: dict[str, bytes] = {}
    for op, key, value in ops:
        if op == "set":
            await cache.set(key, value)
            model[key] = value
        elif op == "get":
            assert await cache.get(key) == model.get(key)
        elif op == "delete":
            await cache.delete([key])
            model.pop(key, None)
        else:
            doomed = [k for k in model if k.startswith(key)]
            assert await cache.clear(key) == len(doomed)
            for k in doomed:
                del model[k]
    assert await cache.get_many(sorted(model)) == [model[k] for k in sorted(model)]


# -- RedisCache beyond the port: what instances share ---------------------------


@pytest.fixture
async def redis_pair(redis_url: str) -> AsyncIterator[tuple[RedisCache, RedisCache]]:
    """Two RedisCaches on one namespace: two server instances sharing an L2."""
    ns = f"test:{uuid4().hex}:"
    a, b = _redis(redis_url, prefix=ns), _redis(redis_url, prefix=ns)
    yield a, b
    await a.clear()
    await a.aclose()
    await b.aclose()


async def test_counters_are_atomic_across_instances(
    redis_pair: tuple[RedisCache, RedisCache],
) -> None:
    a, b = redis_pair
    assert await a.get_int(["g:alice", "g:bob"]) == [0, 0]
    returned = await asyncio.gather(*(c.incr("g:alice") for c in [a, b] * 50))
    assert sorted(returned) == list(range(1, 101))
    assert await b.incr("g:bob") == 1
    assert await a.get_int(["g:alice", "g:bob", "g:carol"]) == [100, 1, 0]
    assert await a.get_int([]) == []


async def test_a_burst_wider_than_the_pool_waits_for_a_connection(redis_url: str) -> None:
    # It used to fail most of the burst with "Too many connections", and the breaker
    # then shut the level off under nothing worse than load.
    cache = _redis(redis_url, prefix=f"test:{uuid4().hex}:", max_connections=4)
    try:
        returned = await asyncio.gather(*(cache.incr("burst") for _ in range(200)))
        assert sorted(returned) == list(range(1, 201))
        assert cache.breaker.state == "closed"
    finally:
        await cache.clear()
        await cache.aclose()


async def test_sorted_sets_rank_and_sum_windows(redis_pair: tuple[RedisCache, RedisCache]) -> None:
    a, b = redis_pair
    for member, times in [(b"q1", 3), (b"q2", 1), (b"q3", 2)]:
        for _ in range(times):
            await a.zincrby("popular:10", member, ttl=60.0)
    assert await b.zincrby("popular:11", "q2", 5.0, ttl=60.0) == 5.0
    assert await b.ztop("popular:10", 2) == [(b"q1", 3.0), (b"q3", 2.0)]
    assert await b.ztop(["popular:10", "popular:11"], 2) == [(b"q2", 6.0), (b"q1", 3.0)]
    assert await b.ztop("popular:none", 5) == []
    assert await b.ztop("popular:10", 0) == []


async def test_a_window_expires_from_its_first_increment(
    redis_pair: tuple[RedisCache, RedisCache],
) -> None:
    a, _ = redis_pair
    await a.zincrby("popular:w", b"q", ttl=_SHORT_TTL)
    # Later increments do not push the window's end back.
    await a.zincrby("popular:w", b"q", ttl=60.0)
    await asyncio.sleep(_PAST_SHORT_TTL)
    assert await a.ztop("popular:w", 5) == []


async def test_only_one_instance_holds_the_lock(redis_pair: tuple[RedisCache, RedisCache]) -> None:
    a, b = redis_pair
    async with a.lock("warmup", 30.0) as first:
        async with b.lock("warmup", 30.0) as second:
            assert (first, second) == (True, False)
        # The loser leaving its block released nothing.
        async with b.lock("warmup", 30.0) as third:
            assert third is False
    async with b.lock("warmup", 30.0) as after_release:
        assert after_release is True


async def test_an_expired_holder_does_not_release_the_next_holders_lock(
    redis_pair: tuple[RedisCache, RedisCache],
) -> None:
    a, b = redis_pair
    async with AsyncExitStack() as b_holds:
        async with a.lock("warmup", _SHORT_TTL) as slow:
            assert slow is True
            await asyncio.sleep(_PAST_SHORT_TTL)
            assert await b_holds.enter_async_context(b.lock("warmup", 30.0)) is True
        # a's block ended and tried to release: b's lock must have survived it.
        async with a.lock("warmup", 30.0) as contender:
            assert contender is False
    async with a.lock("warmup", 30.0) as after_b:
        assert after_b is True
