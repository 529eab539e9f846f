"""Hybrid storage with real processes: a private PostgreSQL that the tests stop and start,
an embedded Edge store beside it, and the server killed with SIGKILL mid-write."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from membank_cli.app import app
from tests.support.postgres import PostgresProcess
from tests.support.server import AUTH, ServerProcess

DIM = 384


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[PostgresProcess]:
    server = PostgresProcess(tmp_path / "pg").init()
    yield server
    server.stop_quietly()


def _env(pg: PostgresProcess, tmp: Path, **hybrid: str) -> dict[str, str]:
    return {
        "MEMBANK_STORAGE__BACKEND": "hybrid",
        "MEMBANK_STORAGE__POSTGRES__DSN": pg.dsn,
        "MEMBANK_STORAGE__EDGE__PATH": str(tmp / "edge"),
        "MEMBANK_STORAGE__POSTGRES__CONNECT_TIMEOUT": "2",
        "MEMBANK_STORAGE__POSTGRES__COMMAND_TIMEOUT": "3",
        **{f"MEMBANK_STORAGE__HYBRID__{k.upper()}": v for k, v in hybrid.items()},
    }


def _pgvector_env(pg: PostgresProcess, tmp: Path) -> dict[str, str]:
    """Served from PostgreSQL alone, with an Edge folder named for a reindex into it."""
    return {
        "MEMBANK_STORAGE__BACKEND": "pgvector",
        "MEMBANK_STORAGE__POSTGRES__DSN": pg.dsn,
        "MEMBANK_STORAGE__EDGE__PATH": str(tmp / "edge"),
    }


def _vec(seed: int) -> list[float]:
    v = np.random.default_rng(seed).standard_normal(DIM)
    return [float(x) for x in v / np.linalg.norm(v)]


def _verify(env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["storage", "verify", "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert '"same": true' in result.stdout


def test_primary_down_reads_come_from_the_secondary(pg: PostgresProcess, tmp_path: Path) -> None:
    env = _env(
        pg, tmp_path, primary="pgvector", secondary="edge", write="both", read="primary_first"
    )
    server = ServerProcess(tmp_path / "data", env).start()
    user = f"u-{uuid.uuid4().hex[:6]}"
    try:
        with server.client() as http:
            m = http.post(
                "/v1/memories", json={"user_id": user, "content": "I like jazz", "vector": _vec(1)}
            )
            assert m.status_code == 201, m.text
            ok = http.get(f"/v1/memories/{m.json()['id']}", params={"user_id": user})
            assert ok.headers["x-membank-backend"] == "hybrid"
            pg.stop()
            got = http.get(f"/v1/memories/{m.json()['id']}", params={"user_id": user})
            assert got.status_code == 200 and got.json()["content"] == "I like jazz"
            assert got.headers["x-membank-backend"] == "edge"  # degraded: the secondary answered
            found = http.post("/v1/search", json={"user_id": user, "vector": _vec(1)})
            assert found.status_code == 200 and len(found.json()["results"]) == 1
            assert 'membank_storage_events_total{backend="edge",kind="fallback"}' in (
                http.get("/metrics").text
            )
            # Writes need both stores under write=both: refused, not half-applied.
            refused = http.post(
                "/v1/memories", json={"user_id": user, "content": "x", "vector": _vec(2)}
            )
            assert refused.status_code == 503, refused.text
            pg.start()
            again = http.post(
                "/v1/memories", json={"user_id": user, "content": "x", "vector": _vec(2)}
            )
            assert again.status_code in (200, 201), again.text
        server.stop()
        _verify(env)
    finally:
        server.stop()


def test_secondary_down_under_both_is_503_then_a_retry_converges(
    pg: PostgresProcess, tmp_path: Path
) -> None:
    env = _env(
        pg, tmp_path, primary="edge", secondary="pgvector", write="both", read="primary_first"
    )
    server = ServerProcess(tmp_path / "data", env).start()
    user = f"u-{uuid.uuid4().hex[:6]}"
    body = {"user_id": user, "content": "I live in Porto", "vector": _vec(3)}
    try:
        with server.client() as http:
            assert http.post("/v1/memories", json={**body, "content": "first"}).status_code == 201
            pg.stop()
            r = http.post("/v1/memories", json=body, headers={"Idempotency-Key": "k1"})
            assert r.status_code == 503 and r.json()["error"]["code"] == "storage_unavailable"
            pg.start()
            retry = http.post("/v1/memories", json=body, headers={"Idempotency-Key": "k1"})
            assert retry.status_code in (200, 201), retry.text
            items = http.get("/v1/memories", params={"user_id": user}).json()["items"]
            assert sorted(m["content"] for m in items) == ["I live in Porto", "first"]
        server.stop()
        _verify(env)
    finally:
        server.stop()


async def _ingest(url: str, user: str, n: int, acked: list[str]) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=10, headers=AUTH) as client:

        async def one(i: int) -> None:
            try:
                r = await client.post(
                    "/v1/memories",
                    json={"user_id": user, "content": f"fact {i}", "vector": _vec(1000 + i)},
                )
            except httpx.TransportError:
                return
            if r.status_code == 201:
                acked.append(r.json()["id"])

        for start in range(0, n, 8):
            await asyncio.gather(*(one(i) for i in range(start, start + 8)))


def test_async_both_survives_kill_9_between_the_two_writes(
    pg: PostgresProcess, tmp_path: Path
) -> None:
    env = _env(
        pg, tmp_path, primary="pgvector", secondary="edge", write="async_both", read="primary_first"
    )
    server = ServerProcess(tmp_path / "data", env).start()
    user = f"u-{uuid.uuid4().hex[:6]}"
    acked: list[str] = []

    async def ingest_then_kill() -> None:
        task = asyncio.create_task(_ingest(server.url, user, 3000, acked))
        while len(acked) < 600 and not task.done():  # noqa: ASYNC110 - polls another task's list
            await asyncio.sleep(0.01)
        server.kill()
        await task

    asyncio.run(ingest_then_kill())
    assert 600 <= len(acked) < 3000
    server.start()
    try:
        with server.client() as http:
            listed: set[str] = set()
            cursor = None
            while True:
                params = {"user_id": user, "limit": 1000, **({"cursor": cursor} if cursor else {})}
                page = http.get("/v1/memories", params=params).json()
                listed |= {m["id"] for m in page["items"]}
                cursor = page["next_cursor"]
                if cursor is None:
                    break
            assert set(acked) <= listed
            for _ in range(100):  # the drainer catches the secondary up after the restart
                if 'kind="outbox_applied"' in http.get("/metrics").text:
                    break
                time.sleep(0.1)
            time.sleep(1.5)
        server.stop()
        _verify(env)
    finally:
        server.stop()


@pytest.mark.parametrize(("threshold", "expected"), [("1000000", "pgvector"), ("0", "edge")])
def test_routed_search_picks_the_store_by_size(
    pg: PostgresProcess, tmp_path: Path, threshold: str, expected: str
) -> None:
    env = _env(
        pg,
        tmp_path,
        primary="pgvector",
        secondary="edge",
        write="both",
        read="routed",
        route_threshold=threshold,
    )
    server = ServerProcess(tmp_path / "data", env).start()
    try:
        with server.client() as http:
            http.post("/v1/memories", json={"user_id": "r", "content": "a", "vector": _vec(5)})
            found = http.post("/v1/search", json={"user_id": "r", "vector": _vec(5)})
            assert found.headers["x-membank-backend"] == expected
            assert found.json()["results"][0]["memory"]["content"] == "a"
            listed = http.get("/v1/memories", params={"user_id": "r"})
            assert listed.headers["x-membank-backend"] == "pgvector"  # exact look-ups: records
    finally:
        server.stop()


def test_reindex_rebuilds_the_vector_store_from_postgres(
    pg: PostgresProcess, tmp_path: Path
) -> None:
    env = _pgvector_env(pg, tmp_path)
    server = ServerProcess(tmp_path / "data", env).start()
    try:
        with server.client() as http:
            batch = [
                {"user_id": f"u{i % 7}", "content": f"fact {i}", "vector": _vec(i)}
                for i in range(1200)
            ]
            for part in (batch[:600], batch[600:]):
                assert http.post("/v1/memories/batch", json={"memories": part}).status_code == 201
            first = http.get("/v1/memories", params={"user_id": "u1", "limit": 1}).json()
            mid = first["items"][0]["id"]
            assert http.delete(f"/v1/memories/{mid}", params={"user_id": "u1"}).status_code == 204
    finally:
        server.stop()
    hybrid = {
        **env,
        "MEMBANK_STORAGE__HYBRID__PRIMARY": "pgvector",
        "MEMBANK_STORAGE__HYBRID__SECONDARY": "edge",
    }
    runner = CliRunner()
    before = runner.invoke(app, ["storage", "verify", "--json"], env=hybrid)
    assert before.exit_code == 1 and '"same": false' in before.stdout
    done = runner.invoke(
        app, ["storage", "reindex", "--from", "postgres", "--to", "edge"], env=hybrid
    )
    assert done.exit_code == 0, done.output
    assert "copied 1,200 records" in done.stderr and "1 deleted" in done.stderr
    _verify(hybrid)


def test_reindex_under_field_encryption_keeps_lexical_search(
    pg: PostgresProcess, tmp_path: Path
) -> None:
    """The copy carries keyed terms: a store indexing the sealed text finds nothing."""
    env = {
        **_pgvector_env(pg, tmp_path),
        "MEMBANK_SECURITY__ENCRYPTION__ENABLED": "true",
        "MEMBANK_SECURITY__ENCRYPTION__KEYS_FILE": str(tmp_path / "keys" / "data-keys.json"),
    }
    runner = CliRunner()
    assert runner.invoke(app, ["keys", "generate-data-key"], env=env).exit_code == 0
    words = ["saxophone", "marathon", "lasagna", "origami", "glacier"]
    server = ServerProcess(tmp_path / "data", env).start()
    try:
        with server.client() as http:
            batch = [
                {"user_id": "enc", "content": f"I keep thinking about {w}", "vector": _vec(i)}
                for i, w in enumerate(words)
            ]
            assert http.post("/v1/memories/batch", json={"memories": batch}).status_code == 201
    finally:
        server.stop()
    done = runner.invoke(app, ["storage", "reindex", "--from", "postgres", "--to", "edge"], env=env)
    assert done.exit_code == 0, done.output
    edge = ServerProcess(tmp_path / "edge", {**env, "MEMBANK_STORAGE__BACKEND": "edge"}).start()
    try:
        with edge.client() as http:
            for word in words:
                hits = http.post(
                    "/v1/search", json={"user_id": "enc", "query": word, "mode": "lexical"}
                )
                assert hits.status_code == 200, hits.text
                assert [h["memory"]["content"] for h in hits.json()["results"]] == [
                    f"I keep thinking about {word}"
                ]
    finally:
        edge.stop()
