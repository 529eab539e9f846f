"""The job queue on PostgreSQL and on Redis, through a real server: a job with a
poison item, across a restart (the queue semantics themselves: the contract suite)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from redis import Redis

from tests.integration.test_jobs_http import all_items, contents, vectors, wait_job
from tests.support.server import ServerProcess


@pytest.fixture(params=["postgres", "redis"])
def backend(request: pytest.FixtureRequest) -> Iterator[tuple[str, dict[str, str]]]:
    """A queue backend's settings, in a schema or key prefix of its own, removed after."""
    tag = uuid.uuid4().hex[:10]
    if request.param == "postgres":
        dsn, schema = request.getfixturevalue("pg_dsn"), f"t_{tag}"
        yield (
            "postgres",
            {
                "MEMBANK_JOBS__BACKEND": "postgres",
                "MEMBANK_STORAGE__POSTGRES__DSN": dsn,
                "MEMBANK_STORAGE__POSTGRES__SCHEMA": schema,
            },
        )

        async def drop() -> None:
            conn = await asyncpg.connect(dsn)
            try:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            finally:
                await conn.close()

        asyncio.run(drop())
        return
    url = request.getfixturevalue("redis_url")
    yield (
        "redis",
        {
            "MEMBANK_JOBS__BACKEND": "redis",
            "MEMBANK_JOBS__REDIS_URL": url,
            "MEMBANK_JOBS__REDIS_PREFIX": f"test:{tag}:",
        },
    )
    redis = Redis.from_url(url)
    keys = list(redis.scan_iter(match=f"test:{tag}:*"))
    if keys:
        redis.delete(*keys)
    redis.close()


def test_a_job_on_a_shared_queue_backend_survives_a_restart(
    backend: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    name, env = backend
    tag = uuid.uuid4().hex[:10]
    server = ServerProcess(tmp_path / "data", env=env).start()
    try:
        with server.client() as api:
            owner, user = f"owner-{tag}", f"user-{tag}"
            taken = api.post("/v1/memories", json={"user_id": owner, "content": "x"}).json()["id"]
            vs = vectors(50, 5)
            memories: list[dict[str, Any]] = [
                {"user_id": user, "content": f"{name} fact {i}", "vector": vs[i]} for i in range(50)
            ]
            memories[3]["id"] = taken
            r = api.post(
                "/v1/memories/batch", params={"mode": "async"}, json={"memories": memories}
            )
            assert r.status_code == 202, r.text
            job_id = r.json()["id"]
            final = wait_job(api, job_id)[-1]
            assert (final["status"], final["done"], final["dead"]) == ("partial", 49, 1)
        server.stop()
        server.start()
        with server.client() as api:
            items = all_items(api, job_id)
            assert [i["state"] for i in items].count("done") == 49
            assert items[3]["error"]["code"] == "conflict"
            assert len(contents(api, user)) == 49
            (dead,) = api.get("/v1/jobs/dead", params={"user_id": user}).json()["items"]
            assert dead["job_id"] == job_id
            assert api.delete(f"/v1/jobs/{job_id}").status_code == 204
    finally:
        server.stop()
