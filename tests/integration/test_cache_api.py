"""The search cache over HTTP with a real Redis (valkey): hits, invalidation, outage, warmup."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from membank_cli.app import app
from tests.support.server import ADMIN_KEY, ServerProcess
from tests.support.valkey import ValkeyProcess


@pytest.fixture
def valkey(tmp_path: Path) -> Iterator[ValkeyProcess]:
    v = ValkeyProcess(tmp_path / "valkey").start()
    yield v
    v.kill()


@pytest.fixture
def cached_server(tmp_path: Path, valkey: ValkeyProcess) -> Iterator[ServerProcess]:
    server = ServerProcess(
        tmp_path / "data",
        env={"MEMBANK_CACHE__REDIS_URL": valkey.url, "MEMBANK_CACHE__REDIS_TIMEOUT": "0.2"},
    ).start()
    yield server
    server.stop()


def _search(http: httpx.Client, user: str, query: str) -> httpx.Response:
    r = http.post("/v1/search", json={"user_id": user, "query": query, "limit": 5})
    assert r.status_code == 200, r.text
    assert r.headers["x-membank-cache"] == r.json()["cache"]
    return r


def test_hits_and_invalidation(cached_server: ServerProcess) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    with cached_server.client() as http:
        m = http.post("/v1/memories", json={"user_id": user, "content": "I love green tea"}).json()
        assert _search(http, user, "what do I drink?").json()["cache"] == "miss"
        again = _search(http, user, "What do I   drink?")
        assert again.json()["cache"] == "hit"
        assert again.json()["results"][0]["memory"]["content"] == "I love green tea"
        http.patch(
            f"/v1/memories/{m['id']}",
            params={"user_id": user},
            json={"content": "I love black coffee"},
        )
        fresh = _search(http, user, "what do I drink?")
        assert fresh.json()["cache"] == "miss"
        assert fresh.json()["results"][0]["memory"]["content"] == "I love black coffee"
        stats = http.get("/v1/cache/stats").json()
        assert stats["levels"]["l1"]["hit"] >= 1 and "l2" in stats["levels"]
        assert stats["searches"]["hit"] >= 1
        metrics = http.get("/metrics").text
        assert 'membank_cache_lookups_total{level="l1",outcome="hit"}' in metrics
        assert "membank_cache_hit_ratio" in metrics
        assert http.delete("/v1/cache", params={"user_id": user}).status_code == 200
        assert _search(http, user, "what do I drink?").json()["cache"] == "miss"


def test_redis_down_serves_from_store_and_recovers(
    cached_server: ServerProcess, valkey: ValkeyProcess
) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    with cached_server.client() as http:
        http.post("/v1/memories", json={"user_id": user, "content": "My dog is called Rex"})
        _search(http, user, "pet name")
        assert _search(http, user, "pet name").json()["cache"] == "hit"
        valkey.kill()
        for i in range(20):
            r = _search(http, user, "pet name")
            assert r.json()["results"][0]["memory"]["content"] == "My dog is called Rex"
            assert r.json()["cache"] in ("bypass", "hit", "miss")
            w = http.post("/v1/memories", json={"user_id": user, "content": f"fact {i}"})
            assert w.status_code == 201, w.text
        assert _search(http, user, "pet name").json()["cache"] == "bypass"
        valkey.start()
        outcome = "bypass"
        for _ in range(100):  # the breaker's cool-down passes, then it closes by itself
            outcome = _search(http, user, "pet name").json()["cache"]
            if outcome == "hit":
                break
            time.sleep(0.2)
        assert outcome == "hit"


def test_warmup_makes_popular_queries_hits(cached_server: ServerProcess) -> None:
    users = [f"w-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    with cached_server.client() as http:
        for u in users:
            http.post("/v1/memories", json={"user_id": u, "content": "I am allergic to peanuts"})
            for _ in range(3):
                _search(http, u, "what food should I avoid?")
        time.sleep(1.5)  # popular-query counts reach Redis once a second
        assert http.delete("/v1/cache").status_code == 200
        assert _search(http, users[0], "what food should I avoid?").json()["cache"] == "miss"
        assert http.delete("/v1/cache").status_code == 200
        result = CliRunner(env={"MEMBANK_API_KEY": ADMIN_KEY}).invoke(
            app,
            [
                "cache",
                "warmup",
                "--strategy",
                "eager",
                "--sample",
                "1",
                "--top",
                "100",
                "--url",
                cached_server.url,
                "--json",
            ],
        )
        assert result.exit_code == 0, result.output
        assert '"warmed"' in result.stdout
        for u in users:
            assert _search(http, u, "what food should I avoid?").json()["cache"] == "hit"
        stats = CliRunner(env={"MEMBANK_API_KEY": ADMIN_KEY}).invoke(
            app, ["cache", "stats", "--url", cached_server.url]
        )
        assert stats.exit_code == 0 and "l1" in stats.stdout


def test_scheduled_warmup_runs_on_its_cron(tmp_path: Path, valkey: ValkeyProcess) -> None:
    server = ServerProcess(
        tmp_path / "data",
        env={
            "MEMBANK_CACHE__REDIS_URL": valkey.url,
            "MEMBANK_CACHE__WARMUP_STRATEGY": "scheduled",
            "MEMBANK_CACHE__WARMUP_CRON": "*/1 * * * * *",
            "MEMBANK_CACHE__WARMUP_SAMPLE": "1",
        },
    ).start()
    user = f"s-{uuid.uuid4().hex[:8]}"
    try:
        with server.client() as http:
            http.post("/v1/memories", json={"user_id": user, "content": "I play the cello"})
            _search(http, user, "which instrument?")
            time.sleep(1.5)
            http.delete("/v1/cache")
            flushed_at = http.get("/v1/cache/stats").json()["warmup"]["rounds"]
            # Two more rounds: the first may have started before the flush.
            for _ in range(100):
                time.sleep(0.1)
                if http.get("/v1/cache/stats").json()["warmup"]["rounds"] >= flushed_at + 2:
                    break
            warmup = http.get("/v1/cache/stats").json()["warmup"]
            assert warmup["rounds"] >= flushed_at + 2 and warmup["last"]["selected"] >= 1
            assert _search(http, user, "which instrument?").json()["cache"] == "hit"
            cli = CliRunner(env={"MEMBANK_API_KEY": ADMIN_KEY}).invoke(
                app, ["cache", "warmup", "--strategy", "scheduled", "--url", server.url]
            )
            assert cli.exit_code == 0 and "*/1 * * * * *" in cli.stderr
    finally:
        server.stop()


def test_cli_flush_and_lazy_warmup(cached_server: ServerProcess) -> None:
    user = f"f-{uuid.uuid4().hex[:8]}"
    runner = CliRunner(env={"MEMBANK_API_KEY": ADMIN_KEY})
    with cached_server.client() as http:
        http.post("/v1/memories", json={"user_id": user, "content": "I sail on weekends"})
        for _ in range(2):
            _search(http, user, "weekend plans?")
        assert _search(http, user, "weekend plans?").json()["cache"] == "hit"
        flushed = runner.invoke(app, ["cache", "flush", "--user", user, "--url", cached_server.url])
        assert flushed.exit_code == 0 and "flushed" in flushed.stderr
        assert _search(http, user, "weekend plans?").json()["cache"] == "miss"
        time.sleep(1.5)  # popular-query counts reach Redis once a second
        runner.invoke(app, ["cache", "flush", "--url", cached_server.url])
        lazy = runner.invoke(
            app,
            ["cache", "warmup", "--strategy", "lazy", "--sample", "1", "--url", cached_server.url],
        )
        assert lazy.exit_code == 0 and "background" in lazy.stderr
        for _ in range(50):
            if (http.get("/v1/cache/stats").json()["warmup"]["last"] or {}).get("warmed"):
                break
            time.sleep(0.1)
        assert _search(http, user, "weekend plans?").json()["cache"] == "hit"
