"""Two server processes over one PostgreSQL and one Redis: no stale read, ever."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import ServerProcess


def _pair(
    tmp_path: Path, pg_dsn: str, redis_url: str, remember: bool
) -> Iterator[tuple[ServerProcess, ...]]:
    env = {
        "MEMBANK_STORAGE__BACKEND": "pgvector",
        "MEMBANK_STORAGE__POSTGRES__DSN": pg_dsn,
        "MEMBANK_STORAGE__POSTGRES__SCHEMA": f"two_{uuid.uuid4().hex[:10]}",
        "MEMBANK_CACHE__REDIS_URL": redis_url,
        "MEMBANK_CACHE__GENERATIONS_FROM_MEMORY": str(remember).lower(),
    }
    a = ServerProcess(tmp_path / "a", env).start()
    b = ServerProcess(tmp_path / "b", env).start()
    yield a, b
    a.stop()
    b.stop()


@pytest.fixture
def pair(tmp_path: Path, pg_dsn: str, redis_url: str) -> Iterator[tuple[ServerProcess, ...]]:
    """The default: generations read from Redis on every search."""
    yield from _pair(tmp_path, pg_dsn, redis_url, remember=False)


@pytest.fixture
def remembering(tmp_path: Path, pg_dsn: str, redis_url: str) -> Iterator[tuple[ServerProcess, ...]]:
    """``cache.generations_from_memory = true``."""
    yield from _pair(tmp_path, pg_dsn, redis_url, remember=True)


def test_a_read_on_b_right_after_a_write_on_a_is_never_stale(
    pair: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = pair
    user = f"two-{uuid.uuid4().hex[:8]}"
    query = {"user_id": user, "query": "what is my favourite number?", "limit": 3}
    with a.client() as on_a, b.client() as on_b:
        m = on_a.post("/v1/memories", json={"user_id": user, "content": "My favourite number is 0"})
        assert m.status_code == 201, m.text
        mid = m.json()["id"]
        hits_seen = 0
        for i in range(1, 41):
            # B answers (and caches) the current state first...
            first = on_b.post("/v1/search", json=query).json()
            second = on_b.post("/v1/search", json=query).json()
            hits_seen += second["cache"] == "hit"
            assert first["results"][0]["memory"]["content"] == f"My favourite number is {i - 1}"
            # ...then A changes it, and B must not answer from what it cached.
            r = on_a.patch(
                f"/v1/memories/{mid}",
                params={"user_id": user},
                json={"content": f"My favourite number is {i}"},
            )
            assert r.status_code == 200, r.text
            after = on_b.post("/v1/search", json=query).json()
            assert after["cache"] == "miss"
            assert after["results"][0]["memory"]["content"] == f"My favourite number is {i}"
            got = on_b.get(f"/v1/memories/{mid}", params={"user_id": user}).json()
            assert got["version"] == i + 1
        assert hits_seen == 40  # the cache was really in play on B
        # A delete on B is seen by A at once as well.
        assert on_b.delete(f"/v1/memories/{mid}", params={"user_id": user}).status_code == 204
        assert on_a.post("/v1/search", json=query).json()["results"] == []


def _subscribers(redis_url: str) -> int:
    import redis

    with redis.Redis.from_url(redis_url) as r:
        return int(dict(r.pubsub_numsub("membank:generations"))[b"membank:generations"])


def _wait_subscribed(redis_url: str, count: int) -> None:
    import time

    deadline = time.monotonic() + 30
    while _subscribers(redis_url) < count:
        assert time.monotonic() < deadline, "the servers did not subscribe again"
        time.sleep(0.05)


def test_b_answers_generations_from_memory_only_while_subscribed(
    remembering: tuple[ServerProcess, ServerProcess], redis_url: str
) -> None:
    """A bump B cannot hear (an INCR with no announcement) stays unseen while B is
    subscribed; once its subscription drops and comes back, B has forgotten every
    generation it remembered and reads the counter again."""
    import redis

    a, b = remembering
    user = f"sub-{uuid.uuid4().hex[:8]}"
    query = {"user_id": user, "query": "what do I drink?", "limit": 3}
    with a.client() as on_a, b.client() as on_b, redis.Redis.from_url(redis_url) as r:
        assert on_a.post("/v1/memories", json={"user_id": user, "content": "tea"}).is_success
        on_a.post("/v1/search", json=query)  # the first read subscribes (and caches, in L2)
        on_b.post("/v1/search", json=query)
        _wait_subscribed(redis_url, 2)
        assert on_b.post("/v1/search", json=query).json()["cache"] == "hit"
        r.incr(f"membank:l2:gen:{user}")  # a bump nobody announces
        assert on_b.post("/v1/search", json=query).json()["cache"] == "hit"  # from memory
        assert r.client_kill_filter(_type="pubsub") >= 2
        _wait_subscribed(redis_url, 2)
        after = on_b.post("/v1/search", json=query).json()
        assert after["cache"] == "miss"  # read the counter again: a new key
        assert after["results"][0]["memory"]["content"] == "tea"
        hit = on_b.post("/v1/search", json=query).json()
        assert hit["cache"] == "hit" and hit["results"] == after["results"]
        # An announced bump (a write on A) is heard by the resubscribed B.
        assert on_a.post("/v1/memories", json={"user_id": user, "content": "coffee"}).is_success
        assert on_b.post("/v1/search", json=query).json()["cache"] == "miss"
