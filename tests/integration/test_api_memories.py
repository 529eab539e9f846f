"""The memory API over HTTP against a real server process on the embedded store."""

from __future__ import annotations

import uuid

import httpx
import numpy as np

DIM = 384


def _user() -> str:
    return f"user-{uuid.uuid4().hex[:12]}"


def _vec(seed: int) -> list[float]:
    v = np.random.default_rng(seed).standard_normal(DIM)
    return [float(x) for x in v / np.linalg.norm(v)]


def _create(http: httpx.Client, user: str, content: str, **extra: object) -> httpx.Response:
    return http.post("/v1/memories", json={"user_id": user, "content": content, **extra})


def test_create_returns_the_stored_memory(http: httpx.Client) -> None:
    user = _user()
    r = _create(
        http,
        user,
        "I am allergic to peanuts",
        metadata={"topic": "health"},
        agent_id="agent-1",
        session_id="s-1",
    )
    assert r.status_code == 201, r.text
    m = r.json()
    assert m["user_id"] == user and m["content"] == "I am allergic to peanuts"
    assert m["metadata"] == {"topic": "health"}
    assert m["version"] == 1 and m["agent_id"] == "agent-1" and m["session_id"] == "s-1"
    assert m["created_at"] == m["updated_at"] and m["expires_at"] is None
    assert len(m["content_hash"]) == 64
    assert r.headers["etag"] == '"1"'
    got = http.get(f"/v1/memories/{m['id']}", params={"user_id": user})
    assert got.status_code == 200 and got.json() == m


def test_exact_duplicate_returns_the_existing_memory(http: httpx.Client) -> None:
    user = _user()
    first = _create(http, user, "My sister lives in Lisbon").json()
    again = _create(http, user, "My sister lives in Lisbon")
    assert again.status_code == 200
    assert again.json()["id"] == first["id"]
    other = _create(http, _user(), "My sister lives in Lisbon")
    assert other.status_code == 201 and other.json()["id"] != first["id"]
    listed = http.get("/v1/memories", params={"user_id": user}).json()["items"]
    assert [m["id"] for m in listed] == [first["id"]]


def test_idempotency_key_replay_stores_once(http: httpx.Client) -> None:
    user = _user()
    body = {"user_id": user, "content": "I drive a blue Toyota", "metadata": {"n": 1}}
    headers = {"Idempotency-Key": "req-1"}
    first = http.post("/v1/memories", json=body, headers=headers)
    replay = http.post("/v1/memories", json=body, headers=headers)
    assert first.status_code == replay.status_code == 201
    assert first.json() == replay.json()
    reused = http.post("/v1/memories", json={**body, "content": "other"}, headers=headers)
    assert reused.status_code == 409
    assert reused.json()["error"]["code"] == "conflict"
    items = http.get("/v1/memories", params={"user_id": user}).json()["items"]
    assert len(items) == 1
    # The same key from another user is another request.
    other = http.post("/v1/memories", json={**body, "user_id": _user()}, headers=headers)
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]


def test_client_id_is_an_idempotent_upsert(http: httpx.Client) -> None:
    user = _user()
    mid = str(uuid.uuid4())
    first = _create(http, user, "I like jazz", id=mid)
    assert first.status_code == 201 and first.json()["id"] == mid
    same = _create(http, user, "I like jazz", id=mid)
    assert same.status_code == 200 and same.json()["version"] == 1
    changed = _create(http, user, "I like jazz and blues", id=mid)
    assert changed.status_code == 200 and changed.json()["version"] == 2
    taken = _create(http, _user(), "I like jazz", id=mid)
    assert taken.status_code == 409
    assert http.get(f"/v1/memories/{mid}", params={"user_id": user}).json()["content"] == (
        "I like jazz and blues"
    )


def test_get_other_users_memory_is_404(http: httpx.Client) -> None:
    m = _create(http, _user(), "I work as a nurse").json()
    r = http.get(f"/v1/memories/{m['id']}", params={"user_id": _user()})
    assert r.status_code == 404
    assert r.json() == {
        "error": {"code": "not_found", "message": r.json()["error"]["message"], "details": {}}
    }
    assert http.get(f"/v1/memories/{uuid.uuid4()}", params={"user_id": "x"}).status_code == 404


def test_batch_creates_all_and_embeds_in_batches(http: httpx.Client) -> None:
    user = _user()
    before = _metric(http, "membank_embedding_seconds_count")
    texts = [f"fact number {i} about my garden" for i in range(40)]
    r = http.post(
        "/v1/memories/batch", json={"memories": [{"user_id": user, "content": t} for t in texts]}
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["created"] == 40 and [m["content"] for m in body["items"]] == texts
    # One embedder call for the whole batch, not one per item.
    assert _metric(http, "membank_embedding_seconds_count") == before + 1


def test_batch_is_all_or_nothing(http: httpx.Client) -> None:
    user = _user()
    items = [{"user_id": user, "content": f"item {i}"} for i in range(5)]
    items[3]["vector"] = [0.1, 0.2]  # type: ignore[assignment]
    r = http.post("/v1/memories/batch", json={"memories": items})
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["details"]["index"] == 3 and err["details"]["field"] == "vector"
    items[3] = {"user_id": user, "content": "x" * 9000}
    r = http.post("/v1/memories/batch", json={"memories": items})
    assert r.status_code == 422 and r.json()["error"]["details"]["index"] == 3
    assert http.get("/v1/memories", params={"user_id": user}).json()["items"] == []
    too_many = [{"user_id": user, "content": f"n{i}"} for i in range(1001)]
    r = http.post("/v1/memories/batch", json={"memories": too_many})
    assert r.status_code == 422 and r.json()["error"]["details"]["limit"] == 1000
    assert http.post("/v1/memories/batch", json={"memories": []}).status_code == 422


def test_pagination_through_2500_memories(http: httpx.Client) -> None:
    user, other = _user(), _user()
    for start in range(0, 2500, 500):
        batch = [
            {
                "user_id": user,
                "content": f"memory {i}",
                "vector": _vec(i),
                "agent_id": "even" if i % 2 == 0 else "odd",
            }
            for i in range(start, start + 500)
        ]
        assert http.post("/v1/memories/batch", json={"memories": batch}).status_code == 201
    _create(http, other, "not yours", vector=_vec(1))
    seen: list[str] = []
    cursor = None
    while True:
        params = {"user_id": user, "limit": 300, **({"cursor": cursor} if cursor else {})}
        page = http.get("/v1/memories", params=params).json()
        seen += [m["id"] for m in page["items"]]
        assert all(m["user_id"] == user for m in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 2500 and len(set(seen)) == 2500
    assert seen == sorted(seen)
    evens = http.get("/v1/memories", params={"user_id": user, "agent_id": "even", "limit": 1000})
    assert len(evens.json()["items"]) == 1000
    assert all(m["agent_id"] == "even" for m in evens.json()["items"])
    bad = http.get("/v1/memories", params={"user_id": user, "cursor": "nope"})
    assert bad.status_code == 422
    # Above the server's page size, a page is that size and next_cursor goes on.
    big = http.get("/v1/memories", params={"user_id": user, "limit": 5000}).json()
    assert len(big["items"]) == 1000 and big["next_cursor"] is not None


def test_patch_history_and_if_match(http: httpx.Client) -> None:
    user = _user()
    m = _create(http, user, "I live in Porto", metadata={"city": "Porto"}).json()
    url, params = f"/v1/memories/{m['id']}", {"user_id": user}
    stale = http.patch(url, params=params, json={"content": "x"}, headers={"If-Match": '"7"'})
    assert stale.status_code == 412
    assert stale.json()["error"]["details"]["current_version"] == 1
    assert (
        http.patch(
            url, params=params, json={"content": "x"}, headers={"If-Match": "v1"}
        ).status_code
        == 400
    )
    r = http.patch(
        url, params=params, json={"content": "I moved to Madrid"}, headers={"If-Match": '"1"'}
    )
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 2 and r.json()["content"] == "I moved to Madrid"
    assert r.json()["created_at"] == m["created_at"] and r.headers["etag"] == '"2"'
    r = http.patch(url, params=params, json={"metadata": {"city": "Madrid"}})
    assert r.json()["version"] == 3 and r.json()["metadata"] == {"city": "Madrid"}
    # Re-embedded: a search finds the new content.
    hits = http.post("/v1/search", json={"user_id": user, "query": "which city in Spain?"})
    assert hits.json()["results"][0]["memory"]["content"] == "I moved to Madrid"
    for forbidden in (
        {"user_id": "bob"},
        {"id": str(uuid.uuid4())},
        {"version": 9},
        {"created_at": "2020-01-01T00:00:00Z"},
    ):
        r = http.patch(url, params=params, json=forbidden)
        assert r.status_code == 422, (forbidden, r.text)
    unchanged = http.patch(url, params=params, json={})
    assert unchanged.status_code == 200 and unchanged.json()["version"] == 3, "an empty patch"
    assert http.patch(url, params={"user_id": _user()}, json={"content": "x"}).status_code == 404
    assert http.delete(url, params=params).status_code == 204
    assert http.get(url, params=params).status_code == 404
    assert http.delete(url, params=params).status_code == 404
    assert http.patch(url, params=params, json={"content": "y"}).status_code == 404
    history = http.get(f"{url}/history", params=params)
    assert history.status_code == 200
    events = history.json()["items"]
    assert [(e["event"], e["version"]) for e in events] == [
        ("ADD", 1),
        ("UPDATE", 2),
        ("UPDATE", 3),
        ("DELETE", 4),
    ]
    assert events[0]["content"] == "I live in Porto"
    assert events[1]["content"] == "I moved to Madrid"
    assert events[2]["metadata"] == {"city": "Madrid"}
    assert http.get(f"{url}/history", params={"user_id": _user()}).status_code == 404


def test_erase_user(http: httpx.Client) -> None:
    user, other = _user(), _user()
    ids = [_create(http, user, f"fact {i}").json()["id"] for i in range(3)]
    kept = _create(http, other, "fact 0").json()["id"]
    http.delete(f"/v1/memories/{ids[0]}", params={"user_id": user})
    r = http.delete("/v1/memories", params={"user_id": user})
    assert r.status_code == 200 and r.json() == {"deleted": 2}
    assert http.get("/v1/memories", params={"user_id": user}).json()["items"] == []
    assert http.get(f"/v1/memories/{ids[0]}/history", params={"user_id": user}).status_code == 404
    assert http.get(f"/v1/memories/{kept}", params={"user_id": other}).status_code == 200


def test_expired_memories_are_never_returned(http: httpx.Client) -> None:
    import datetime as dt
    import time

    user = _user()
    past = "2020-01-01T00:00:00Z"
    old = _create(http, user, "old: expired before it was written", expires_at=past)
    assert old.status_code == 201, "stored already expired, as a key's past expiry in Redis"
    assert http.get(f"/v1/memories/{old.json()['id']}", params={"user_id": user}).status_code == 404
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1.5)).isoformat()
    m = _create(http, user, "short-lived: the door code is 4321", expires_at=soon).json()
    assert http.get(f"/v1/memories/{m['id']}", params={"user_id": user}).status_code == 200
    time.sleep(2.0)
    assert http.get(f"/v1/memories/{m['id']}", params={"user_id": user}).status_code == 404
    assert http.get("/v1/memories", params={"user_id": user}).json()["items"] == []
    hits = http.post("/v1/search", json={"user_id": user, "query": "door code"}).json()
    assert hits["results"] == []


def _metric(http: httpx.Client, name: str) -> float:
    for line in http.get("/metrics").text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
