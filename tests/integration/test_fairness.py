"""One tenant cannot degrade or observe another, against a real server.

* Quotas per user (memories, bytes) answer 403 ``quota_exceeded``; history keeps the
  configured number of versions.
* One key's concurrent batch writes beyond its limit answer 429 while another key's
  searches go on.
* Another tenant's search leaves no trace in yours: query embeddings are cached per
  user (asserted on the cache outcome and the embedding counter, not on timings);
  ``/metrics`` needs an admin key, or a separate listener.
* A key stops working at its ``expires_at``, even while remembered as verified.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.support.server import ServerProcess, free_port


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root: Path = tmp_path_factory.mktemp("fairness")
    metrics_port = free_port()
    proc = ServerProcess(
        root / "data",
        env={
            "MEMBANK_LIMITS__USER_MAX_MEMORIES": "5",
            "MEMBANK_LIMITS__USER_MAX_BYTES": "4000",
            "MEMBANK_LIMITS__HISTORY_MAX_VERSIONS": "3",
            "MEMBANK_SECURITY__MAX_CONCURRENT_BATCHES_PER_KEY": "1",
            "MEMBANK_SECURITY__KEY_CACHE_SECONDS": "60",
            "MEMBANK_SERVER__METRICS_ADDRESS": f"127.0.0.1:{metrics_port}",
        },
    )
    proc.metrics_port = metrics_port  # type: ignore[attr-defined]
    proc.start()
    yield proc
    proc.stop()


def _key(http: httpx.Client, **spec: object) -> str:
    r = http.post("/v1/admin/keys", json={"name": f"k-{uuid.uuid4().hex[:6]}", **spec})
    return str(r.raise_for_status().json()["secret"])


def _counter(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _batch_in_progress(text: str) -> bool:
    return any(
        line.startswith("membank_requests_in_progress{")
        and 'path="/v1/memories/batch"' in line
        and float(line.rsplit(" ", 1)[1]) >= 1
        for line in text.splitlines()
    )


def test_quotas_refuse_what_a_user_may_not_hold(server: ServerProcess) -> None:
    user = f"q-{uuid.uuid4().hex[:6]}"
    with server.client() as http:
        ids = [
            http.post("/v1/memories", json={"user_id": user, "content": f"fact {i}"}).json()["id"]
            for i in range(5)
        ]
        sixth = http.post("/v1/memories", json={"user_id": user, "content": "one too many"})
        assert sixth.status_code == 403
        assert sixth.json()["error"]["code"] == "quota_exceeded"
        assert sixth.json()["error"]["details"]["quota"] == "memories"
        assert http.delete(f"/v1/memories/{ids[0]}", params={"user_id": user}).status_code == 204
        assert (
            http.post("/v1/memories", json={"user_id": user, "content": "room again"}).status_code
            == 201
        )
        other = f"q-{uuid.uuid4().hex[:6]}"
        big = http.post(
            "/v1/memories/batch",
            json={
                "memories": [{"user_id": other, "content": "x" * 3000 + str(i)} for i in range(2)]
            },
        )
        assert big.status_code == 403 and big.json()["error"]["details"]["quota"] == "bytes"
        assert http.get("/v1/memories", params={"user_id": other}).json()["items"] == []


def test_history_keeps_the_configured_versions(server: ServerProcess) -> None:
    user = f"h-{uuid.uuid4().hex[:6]}"
    with server.client() as http:
        memory = http.post("/v1/memories", json={"user_id": user, "content": "v1"}).json()
        for v in range(2, 8):
            http.patch(
                f"/v1/memories/{memory['id']}", params={"user_id": user}, json={"content": f"v{v}"}
            ).raise_for_status()
        history = http.get(f"/v1/memories/{memory['id']}/history", params={"user_id": user})
    assert [h["content"] for h in history.json()["items"]] == ["v5", "v6", "v7"]


def test_one_keys_batches_beyond_its_limit_wait_their_turn_not_others(
    server: ServerProcess,
) -> None:
    with server.client() as admin:
        bulk_key = _key(admin, scope="all")
        searcher_key = _key(admin, user_id="searcher")
    long = " ".join(["a slow sentence for the embedder to chew on"] * 40)
    body = {"memories": [{"user_id": f"b{i}", "content": f"{long} {i}"} for i in range(48)]}
    answers: list[int] = []

    def bulk() -> None:
        with httpx.Client(base_url=server.url, timeout=120) as http:
            r = http.post(
                "/v1/memories/batch", json=body, headers={"Authorization": f"Bearer {bulk_key}"}
            )
            answers.append(r.status_code)

    first = threading.Thread(target=bulk)
    first.start()
    with server.client() as admin:  # wait until the first batch is in the server
        while first.is_alive() and not _batch_in_progress(admin.get("/metrics").text):
            time.sleep(0.02)
    with server.client(bulk_key) as http:
        second = http.post("/v1/memories/batch", json=body)
    with server.client(searcher_key) as http:
        search = http.post("/v1/search", json={"user_id": "searcher", "query": "anything"})
    first.join(120)
    assert second.status_code == 429
    assert second.json()["error"]["code"] == "too_many_concurrent"
    assert second.headers["retry-after"] == "1"
    assert search.status_code == 200, "another key is not held up by the limit"
    assert answers == [201]


def test_another_tenants_search_leaves_no_trace_in_yours(server: ServerProcess) -> None:
    question = f"which city did my sister move to in {uuid.uuid4().hex[:6]}?"
    with server.client() as admin:
        alice_key, bob_key = _key(admin, user_id="alice"), _key(admin, user_id="bob")
        metrics = lambda: _counter(admin.get("/metrics").text, "membank_embedded_texts_total")  # noqa: E731
        with server.client(bob_key) as bob:
            assert (
                bob.post("/v1/search", json={"user_id": "bob", "query": question}).status_code
                == 200
            )
        before = metrics()
        with server.client(alice_key) as alice:
            first = alice.post("/v1/search", json={"user_id": "alice", "query": question})
            after_first = metrics()
            again = alice.post("/v1/search", json={"user_id": "alice", "query": question})
        after_again = metrics()
    assert first.json()["cache"] == "miss"
    assert after_first == before + 1, (
        "alice's question is embedded for alice, not served from bob's"
    )
    assert again.json()["cache"] == "hit" and after_again == after_first


def test_metrics_need_an_admin_key_or_the_private_listener(server: ServerProcess) -> None:
    assert httpx.get(f"{server.url}/metrics").status_code == 401
    with server.client() as admin:
        user_key = _key(admin, user_id="alice")
        assert admin.get("/metrics").status_code == 200
    with server.client(user_key) as user:
        assert user.get("/metrics").status_code == 403
    port = server.metrics_port  # type: ignore[attr-defined]
    listener = httpx.get(f"http://127.0.0.1:{port}/metrics")
    assert listener.status_code == 200 and "membank_embedded_texts_total" in listener.text


def test_a_remembered_key_stops_at_its_expiry(server: ServerProcess) -> None:
    soon = datetime.now(UTC) + timedelta(seconds=2)
    with server.client() as admin:
        key = _key(admin, user_id="alice", expires_at=soon.isoformat())
    with server.client(key) as http:
        assert http.get("/v1/whoami").status_code == 200  # verified, and remembered for 60 s
        time.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.5)
        assert http.get("/v1/whoami").status_code == 401
