"""Acknowledged writes survive kill -9; everything survives a restart."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.support.server import AUTH, ServerProcess

DIM = 384


def _vectors(n: int, seed: int) -> list[list[float]]:
    v = np.random.default_rng(seed).standard_normal((n, DIM))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return np.round(v, 6).tolist()  # type: ignore[no-any-return]


async def _ingest(
    url: str,
    bodies: list[dict[str, object]],
    acked: dict[str, str],
    workers: int,
    stop_after: int,
    stopped: threading.Event,
) -> None:
    queue = iter(bodies)
    async with httpx.AsyncClient(base_url=url, timeout=10, headers=AUTH) as client:

        async def worker() -> None:
            for body in queue:
                try:
                    r = await client.post("/v1/memories", json=body)
                except httpx.TransportError:
                    return  # the server is gone: nothing more is acknowledged
                if r.status_code in (200, 201):
                    acked[str(body["content"])] = r.json()["id"]
                if len(acked) >= stop_after:
                    stopped.set()

        await asyncio.gather(*(worker() for _ in range(workers)))


@contextlib.contextmanager
def _killed_after(server: ServerProcess) -> Iterator[None]:
    """kill -9 the server when the block ends, whether it passed or failed."""
    try:
        yield
    finally:
        server.kill()


@pytest.mark.slow
def test_acknowledged_writes_survive_kill_9(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    users = [f"durable-{i}" for i in range(20)]
    vectors = _vectors(5000, 11)
    bodies: list[dict[str, object]] = [
        {"user_id": users[i % 20], "content": f"durable fact {i}", "vector": vectors[i]}
        for i in range(5000)
    ]
    acked: dict[str, str] = {}
    stopped = threading.Event()
    killer = threading.Thread(target=lambda: (stopped.wait(120), server.kill()))
    killer.start()
    asyncio.run(_ingest(server.url, bodies, acked, 8, 2500, stopped))
    killer.join()
    assert 2500 <= len(acked) < 5000, "the kill must land mid-ingest"

    server.start()
    try:
        with server.client() as http:
            stored: dict[str, list[str]] = {}
            for user in users:
                cursor = None
                while True:
                    params = {
                        "user_id": user,
                        "limit": 1000,
                        **({"cursor": cursor} if cursor else {}),
                    }
                    page = http.get("/v1/memories", params=params).json()
                    for m in page["items"]:
                        stored.setdefault(m["content"], []).append(m["id"])
                    cursor = page["next_cursor"]
                    if cursor is None:
                        break
        missing = [c for c in acked if c not in stored]
        assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {missing[:3]}"
        assert all(stored[c] == [acked[c]] for c in acked), "an acknowledged write is stored twice"
        assert all(len(ids) == 1 for ids in stored.values())
    finally:
        server.stop()


def test_single_writes_acknowledged_before_any_flush_survive_kill_9(tmp_path: Path) -> None:
    # No segment flush while the server runs (an hour between them): what survives
    # the kill is what the synced write-ahead log holds.
    server = ServerProcess(
        tmp_path / "data", env={"MEMBANK_STORAGE__EDGE__FLUSH_INTERVAL": "3600"}
    ).start()
    user = "burst"
    vectors = _vectors(81, 5)
    acked: dict[str, str] = {}
    with server.client() as http, _killed_after(server):
        for i in range(80):
            body = {"user_id": user, "content": f"burst fact {i}", "vector": vectors[i]}
            r = http.post("/v1/memories", json=body)
            assert r.status_code in (200, 201), r.text
            acked[f"burst fact {i}"] = r.json()["id"]
        changed = http.patch(
            f"/v1/memories/{acked.pop('burst fact 0')}",
            params={"user_id": user},
            json={"content": "burst fact changed", "vector": vectors[80]},
        )
        assert changed.status_code == 200, changed.text
        acked["burst fact changed"] = changed.json()["id"]
        gone = http.delete(f"/v1/memories/{acked.pop('burst fact 1')}", params={"user_id": user})
        assert gone.status_code in (200, 204), gone.text

    server.start()
    try:
        with server.client() as http:
            page = http.get("/v1/memories", params={"user_id": user, "limit": 1000}).json()
            stored = {m["content"]: m["id"] for m in page["items"]}
            assert stored == acked
            history = http.get(
                f"/v1/memories/{acked['burst fact changed']}/history", params={"user_id": user}
            )
            assert [e["event"] for e in history.json()["items"]] == ["ADD", "UPDATE"]
    finally:
        server.stop()


def test_restart_keeps_everything_searchable(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    user = f"restart-{uuid.uuid4().hex[:8]}"
    try:
        with server.client() as http:
            facts = [
                "I am allergic to peanuts",
                "My sister lives in Lisbon",
                "I drive a blue Toyota",
            ]
            r = http.post(
                "/v1/memories/batch",
                json={"memories": [{"user_id": user, "content": f} for f in facts]},
            )
            ids = {m["content"]: m["id"] for m in r.json()["items"]}
            upd = http.patch(
                f"/v1/memories/{ids[facts[2]]}",
                params={"user_id": user},
                json={"content": "I drive a red Honda"},
            )
            assert upd.status_code == 200
            http.delete(f"/v1/memories/{ids[facts[1]]}", params={"user_id": user})
        server.stop()
        server.start()
        with server.client() as http:
            items = http.get("/v1/memories", params={"user_id": user}).json()["items"]
            assert sorted(m["content"] for m in items) == [
                "I am allergic to peanuts",
                "I drive a red Honda",
            ]
            hit = http.post("/v1/search", json={"user_id": user, "query": "what car do I drive?"})
            assert hit.json()["results"][0]["memory"]["content"] == "I drive a red Honda"
            food = http.post("/v1/search", json={"user_id": user, "query": "food to avoid"})
            assert food.json()["results"][0]["memory"]["content"] == "I am allergic to peanuts"
            history = http.get(f"/v1/memories/{ids[facts[1]]}/history", params={"user_id": user})
            assert [e["event"] for e in history.json()["items"]] == ["ADD", "DELETE"]
    finally:
        server.stop()
