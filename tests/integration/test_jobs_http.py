"""Asynchronous writes over HTTP: jobs, progress, scaling in metrics, dead letters,
back-pressure and tenancy, against a real server on the embedded store."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from membank_cli.app import app
from tests.support.server import ADMIN_KEY, ServerProcess

DIM = 384
POOL = {
    "MEMBANK_JOBS__EMBED_STORE__MAX": "4",
    "MEMBANK_JOBS__EMBED_STORE__BATCH": "100",
    "MEMBANK_JOBS__SCALE_INTERVAL_SECONDS": "0.2",
    "MEMBANK_SERVER__BATCH_MAX_BODY_BYTES": str(64 * 2**20),
}


def vectors(n: int, seed: int) -> list[list[float]]:
    v = np.random.default_rng(seed).standard_normal((n, DIM))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return np.round(v, 4).tolist()  # type: ignore[no-any-return]


def wait_job(api: httpx.Client, job_id: str, timeout: float = 120) -> list[dict[str, Any]]:
    """Poll a job until it finishes; every answer seen, in order."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = api.get(f"/v1/jobs/{job_id}", params={"item_limit": 1}).json()
        seen.append(job)
        if job["status"] in ("done", "partial", "failed"):
            return seen
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish: {seen[-1]}")


def all_items(api: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:
        page = api.get(f"/v1/jobs/{job_id}", params={"item_offset": offset}).json()
        items += page["items"]
        offset = page["next_item_offset"]
    return items


def contents(api: httpx.Client, user: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    cursor = None
    while True:
        params = {"user_id": user, "limit": 1000, **({"cursor": cursor} if cursor else {})}
        page = api.get("/v1/memories", params=params).json()
        found += [(m["content"], m["id"]) for m in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return found


def workers(api: httpx.Client, kind: str = "embed_store") -> int:
    text = api.get("/metrics").text
    found = re.search(rf'^membank_job_workers\{{kind="{kind}"\}} (\S+)$', text, re.M)
    return int(float(found.group(1))) if found else -1


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root: Path = tmp_path_factory.mktemp("pipeline")
    proc = ServerProcess(root / "data", env=POOL).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def api(pipeline: ServerProcess) -> Iterator[httpx.Client]:
    with pipeline.client() as client:
        yield client


def test_5000_items_over_50_users_stored_once_with_progress_and_scaling(
    api: httpx.Client,
) -> None:
    tag = uuid.uuid4().hex[:6]
    users = [f"bulk-{tag}-{i}" for i in range(50)]
    vs = vectors(5000, 1)
    body = {
        "memories": [
            {"user_id": users[i % 50], "content": f"bulk fact {i}", "vector": vs[i]}
            for i in range(5000)
        ]
    }
    r = api.post("/v1/memories/batch", params={"mode": "async"}, json=body)
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    assert r.headers["Location"] == f"/v1/jobs/{job_id}"
    assert r.json()["total"] == 5000 and r.json()["user_ids"] == sorted(users)
    seen, most = [], 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = api.get(f"/v1/jobs/{job_id}", params={"item_limit": 1}).json()
        seen.append(job["done"])
        most = max(most, workers(api))
        if job["status"] == "done":
            break
    assert seen[-1] == 5000 and seen == sorted(seen)
    assert any(0 < d < 5000 for d in seen), "progress is reported on the way"
    items = all_items(api, job_id)
    assert [i["index"] for i in items] == list(range(5000))
    assert all(i["state"] == "done" and i["memory_id"] for i in items)
    stored = {}
    for user in users:
        mine = contents(api, user)
        assert len(mine) == 100
        stored.update(mine)
    assert len(stored) == 5000
    assert {stored[f"bulk fact {i}"] for i in range(5000)} == {i["memory_id"] for i in items}
    listed = api.get("/v1/jobs", params={"user_id": users[7]}).json()["items"]
    assert [j["id"] for j in listed] == [job_id] and listed[0]["status"] == "done"
    # The pool grew to its max under the backlog and shrinks back to its min when idle.
    assert most == 4
    deadline = time.monotonic() + 30
    while workers(api) != 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert workers(api) == 1
    text = api.get("/metrics").text
    assert "membank_job_batch_items_count" in text and "membank_job_wait_seconds_count" in text


def test_a_poison_item_goes_to_the_dead_letters_and_the_rest_completes(
    api: httpx.Client,
) -> None:
    tag = uuid.uuid4().hex[:6]
    owner, user = f"owner-{tag}", f"poison-{tag}"
    taken = api.post("/v1/memories", json={"user_id": owner, "content": "mine"}).json()["id"]
    vs = vectors(20, 2)
    memories: list[dict[str, Any]] = [
        {"user_id": user, "content": f"fact {i}", "vector": vs[i]} for i in range(20)
    ]
    memories[7]["id"] = taken
    r = api.post("/v1/memories/batch", params={"mode": "async"}, json={"memories": memories})
    job_id = r.json()["id"]
    final = wait_job(api, job_id)[-1]
    assert (final["status"], final["done"], final["dead"]) == ("partial", 19, 1)
    poisoned = all_items(api, job_id)[7]
    assert poisoned["state"] == "dead" and poisoned["error"]["code"] == "conflict"
    assert sorted(c for c, _ in contents(api, user)) == sorted(
        f"fact {i}" for i in range(20) if i != 7
    )
    (dead,) = api.get("/v1/jobs/dead", params={"user_id": user}).json()["items"]
    assert (dead["job_id"], dead["index"], dead["error"]["code"]) == (job_id, 7, "conflict")
    assert api.get("/v1/memories", params={"user_id": owner}).json()["items"][0]["id"] == taken
    # Retried, it fails the same way and lands in the dead letters again.
    assert api.post(f"/v1/jobs/{job_id}/retry").json() == {"retried": 1}
    again = wait_job(api, job_id)[-1]
    assert (again["status"], again["done"], again["dead"]) == ("partial", 19, 1)
    assert api.delete(f"/v1/jobs/{job_id}").status_code == 204
    assert api.get(f"/v1/jobs/{job_id}").status_code == 404
    assert api.get("/v1/jobs/dead", params={"user_id": user}).json()["items"] == []


def test_jobs_are_tenant_scoped(api: httpx.Client, pipeline: ServerProcess) -> None:
    tag = uuid.uuid4().hex[:6]
    alice, bob = f"alice-{tag}", f"bob-{tag}"
    keys = {}
    for user in (alice, bob):
        r = api.post("/v1/admin/keys", json={"name": user, "scope": "own", "user_id": user})
        keys[user] = r.json()["secret"]
    with pipeline.client(keys[bob]) as as_bob, pipeline.client(keys[alice]) as as_alice:
        job = as_bob.post(
            "/v1/memories", params={"mode": "async"}, json={"user_id": bob, "content": "b"}
        )
        assert job.status_code == 202
        job_id = job.json()["id"]
        wait_job(as_bob, job_id)
        for method, path in (
            ("GET", f"/v1/jobs/{job_id}"),
            ("POST", f"/v1/jobs/{job_id}/retry"),
            ("DELETE", f"/v1/jobs/{job_id}"),
            ("GET", f"/v1/jobs?user_id={bob}"),
            ("GET", f"/v1/jobs/dead?user_id={bob}"),
        ):
            answer = as_alice.request(method, path)
            assert answer.status_code == 404, (method, path, answer.text)
        assert as_alice.get("/v1/jobs/dead").status_code == 403
        refused = as_alice.post(
            "/v1/memories/batch",
            params={"mode": "async"},
            json={"memories": [{"user_id": bob, "content": "sneaky"}]},
        )
        assert refused.status_code == 403
        assert [
            j["id"] for j in as_bob.get("/v1/jobs", params={"user_id": bob}).json()["items"]
        ] == [job_id]


def test_a_full_queue_answers_429_and_a_restart_loses_nothing(tmp_path: Path) -> None:
    limits = {
        "MEMBANK_JOBS__QUEUE_MAX_ITEMS": "100",
        "MEMBANK_JOBS__USER_MAX_ITEMS": "60",
        "MEMBANK_JOBS__JOB_MAX_ITEMS": "80",
    }
    # An instance that accepts jobs and runs none: the queue only fills.
    idle = ServerProcess(
        tmp_path / "data", env={**limits, "MEMBANK_JOBS__EMBED_STORE__MIN": "0",
                                "MEMBANK_JOBS__EMBED_STORE__MAX": "0"},
    ).start()  # fmt: skip

    def batch(user: str, n: int) -> dict[str, Any]:
        return {"memories": [{"user_id": user, "content": f"{user} {i}"} for i in range(n)]}

    try:
        with idle.client() as api:
            post = lambda body: api.post(  # noqa: E731
                "/v1/memories/batch", params={"mode": "async"}, json=body
            )
            assert post(batch("a", 81)).status_code == 413
            first = post(batch("a", 60))
            assert first.status_code == 202
            mine = post(batch("a", 1))
            assert mine.status_code == 429
            assert mine.json()["error"]["code"] == "queue_full"
            assert int(mine.headers["Retry-After"]) >= 1
            full = post(batch("b", 41))
            assert full.status_code == 429 and "limit of 100" in full.json()["error"]["message"]
            second = post(batch("b", 40))
            assert second.status_code == 202
            ids = [first.json()["id"], second.json()["id"]]
            assert all(api.get(f"/v1/jobs/{i}").json()["status"] == "queued" for i in ids)
        assert idle.stop() == 0
        busy = ServerProcess(tmp_path / "data", env=limits).start()
        try:
            with busy.client() as api:
                for job_id in ids:
                    assert wait_job(api, job_id)[-1]["status"] == "done"
                assert len(contents(api, "a")) == 60 and len(contents(api, "b")) == 40
        finally:
            busy.stop()
    finally:
        idle.stop()


def test_the_jobs_cli_lists_shows_retries_and_purges(
    api: httpx.Client, pipeline: ServerProcess
) -> None:
    tag = uuid.uuid4().hex[:6]
    owner, user = f"cli-owner-{tag}", f"cli-{tag}"
    taken = api.post("/v1/memories", json={"user_id": owner, "content": "mine"}).json()["id"]
    memories = [
        {"user_id": user, "content": "fine"},
        {"user_id": user, "content": "x", "id": taken},
    ]
    job_id = api.post(
        "/v1/memories/batch", params={"mode": "async"}, json={"memories": memories}
    ).json()["id"]
    wait_job(api, job_id)
    run = CliRunner()
    env = {"MEMBANK_API_KEY": ADMIN_KEY}
    where = ["--url", pipeline.url]

    def cli(*args: str) -> str:
        result = run.invoke(app, ["jobs", *args, *where], env=env)
        assert result.exit_code == 0, result.output
        return result.stdout

    listed = json.loads(cli("list", "--user", user, "--json"))
    assert [(j["id"], j["status"]) for j in listed] == [(job_id, "partial")]
    (dead,) = json.loads(cli("list", "--dead", "--user", user, "--json"))
    assert (dead["job_id"], dead["index"], dead["error"]["code"]) == (job_id, 1, "conflict")
    shown = cli("show", job_id, "--failed")
    assert "conflict" in shown and "this id belongs to another memory" in shown
    assert "fine" not in shown  # items show ids and errors, never content
    retried = run.invoke(app, ["jobs", "retry", job_id, *where], env=env)
    assert retried.exit_code == 0 and "1 item(s)" in retried.stderr
    wait_job(api, job_id)
    purged = run.invoke(app, ["jobs", "purge", job_id, *where], env=env)
    assert purged.exit_code == 0, purged.output
    gone = run.invoke(app, ["jobs", "show", job_id, *where], env=env)
    assert gone.exit_code == 1 and "404" in gone.stderr
    nobody = run.invoke(app, ["jobs", "list", "--user", user, *where], env={})
    assert nobody.exit_code == 1 and "401" in nobody.stderr
