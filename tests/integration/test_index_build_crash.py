"""kill -9 of ``membank serve`` while it builds its index, and after the switch:
every acknowledged write is there after a restart, and the build's child dies with
the server."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import numpy as np
import psutil

from tests.support.server import ServerProcess

DIM = 384
# 1.5 KB vectors: 3,000 memories are 4.5 MB, past both thresholds (HNSW is built).
ENV = {
    "MEMBANK_STORAGE__EDGE__INDEXING_THRESHOLD_KB": "500",
    "MEMBANK_STORAGE__EDGE__FULL_SCAN_THRESHOLD": "100",
}


def _vectors(n: int, seed: int) -> list[list[float]]:
    v = np.random.default_rng(seed).standard_normal((n, DIM))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return np.round(v, 6).tolist()  # type: ignore[no-any-return]


def _add(http: httpx.Client, user: str, content: str, vector: list[float]) -> str:
    r = http.post("/v1/memories", json={"user_id": user, "content": content, "vector": vector})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _builder(server: ServerProcess) -> psutil.Process | None:
    assert server.proc is not None
    for child in psutil.Process(server.proc.pid).children():
        if any("optimize()" in part for part in child.cmdline()):
            return child
    return None


def _stored(http: httpx.Client, user: str) -> dict[str, str]:
    out: dict[str, str] = {}
    cursor = None
    while True:
        params = {"user_id": user, "limit": 1000, **({"cursor": cursor} if cursor else {})}
        page = http.get("/v1/memories", params=params).json()
        out.update({m["content"]: m["id"] for m in page["items"]})
        cursor = page["next_cursor"]
        if cursor is None:
            return out


def test_kill_9_during_an_index_build_and_after_its_switch(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", env=ENV).start()
    collection = tmp_path / "data" / "memories"
    vectors = _vectors(3400, 3)
    acked: dict[str, str] = {}
    try:
        with server.client() as http:
            for start in range(0, 3000, 500):
                batch = [
                    {"user_id": "big", "content": f"big fact {i}", "vector": vectors[i]}
                    for i in range(start, start + 500)
                ]
                r = http.post("/v1/memories/batch", json={"memories": batch})
                assert r.status_code == 201, r.text
            started = http.post("/v1/collection/optimize")
            assert started.status_code == 202, started.text
            assert started.json()["running"] is True
            # Write until the build's child runs, then a few more, then kill -9 with the
            # child still building (or the server catching up after it).
            n = 3000
            child = None
            while child is None or n < 3010:
                content = f"written during the build {n}"
                acked[content] = _add(http, "writer", content, vectors[n])
                n += 1
                child = child or _builder(server)
                assert n < 3300, "the build's child never started"
            assert child.is_running()
    finally:
        server.kill()
    assert not (collection / "GENERATION").exists(), "the kill must land before the switch"
    child.wait(30)  # dies with the server (PR_SET_PDEATHSIG), not an orphan

    server.start()
    try:
        with server.client() as http:
            assert _stored(http, "writer") == acked
            assert len(_stored(http, "big")) == 3000
            assert not [p for p in collection.iterdir() if p.name.startswith("gen-")]
            # Build to the end this time, write after the switch, and kill again.
            assert http.post("/v1/collection/optimize").status_code == 202
            deadline = time.monotonic() + 120
            while http.get("/v1/collection").json()["index_build"]["running"]:
                assert time.monotonic() < deadline, "the build did not finish"
                time.sleep(0.2)
            build = http.get("/v1/collection").json()
            assert build["index_build"]["error"] is None and build["index_build"]["changed"]
            for i in range(3300, 3320):
                content = f"written after the switch {i}"
                acked[content] = _add(http, "writer", content, vectors[i])
            gone = acked.pop("written during the build 3001")
            assert http.delete(f"/v1/memories/{gone}", params={"user_id": "writer"}).is_success
    finally:
        server.kill()
    assert (collection / "GENERATION").exists()

    server.start()
    try:
        with server.client() as http:
            assert _stored(http, "writer") == acked
            assert len(_stored(http, "big")) == 3000
            hits = http.post(
                "/v1/search", json={"user_id": "big", "vector": vectors[1234], "limit": 1}
            ).json()
            assert [h["memory"]["content"] for h in hits["results"]] == ["big fact 1234"]
    finally:
        server.stop()
