"""kill -9 in the middle of an asynchronous job: after a restart every accepted item is
stored exactly once (an item carries its memory id, so one processed twice is one)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.integration.test_jobs_http import POOL, all_items, contents, vectors, wait_job
from tests.support.server import ServerProcess


@pytest.mark.slow
def test_kill_9_mid_job_of_10000_items_then_restart_completes_it_exactly_once(
    tmp_path: Path,
) -> None:
    env = {**POOL, "MEMBANK_JOBS__EMBED_STORE__BATCH": "50"}
    server = ServerProcess(tmp_path / "data", env=env).start()
    users = [f"crash-{i}" for i in range(20)]
    vs = vectors(10_000, 3)
    body = {
        "memories": [
            {"user_id": users[i % 20], "content": f"crash fact {i}", "vector": vs[i]}
            for i in range(10_000)
        ]
    }
    try:
        with server.client() as api:
            r = api.post("/v1/memories/batch", params={"mode": "async"}, json=body)
            assert r.status_code == 202, r.text
            job_id = r.json()["id"]
            done = 0
            deadline = time.monotonic() + 120
            while done < 1000 and time.monotonic() < deadline:
                done = api.get(f"/v1/jobs/{job_id}", params={"item_limit": 1}).json()["done"]
        server.kill()
        assert 1000 <= done < 10_000, "the kill must land mid-job"
        server.start()
        with server.client() as api:
            final = wait_job(api, job_id, timeout=300)[-1]
            assert (final["status"], final["done"], final["dead"]) == ("done", 10_000, 0)
            items = all_items(api, job_id)
            stored: dict[str, list[str]] = {}
            for user in users:
                for content, memory_id in contents(api, user):
                    stored.setdefault(content, []).append(memory_id)
        assert len(stored) == 10_000, "every accepted item is stored"
        assert all(len(ids) == 1 for ids in stored.values()), "and none twice"
        assert {i["memory_id"] for i in items} == {ids[0] for ids in stored.values()}
        assert any(i["attempts"] > 1 for i in items), "items cut off by the kill ran again"
    finally:
        server.stop()
