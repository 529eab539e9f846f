"""Semantic search over HTTP: ranking, tenant isolation, filters, limits."""

from __future__ import annotations

import datetime as dt
import uuid

import httpx
import numpy as np

DIM = 384


def _user() -> str:
    return f"user-{uuid.uuid4().hex[:12]}"


def _unit(v: np.ndarray) -> list[float]:
    return [float(x) for x in v / np.linalg.norm(v)]


def _search(http: httpx.Client, **body: object) -> httpx.Response:
    return http.post("/v1/search", json=body)


def test_semantic_recall_and_isolation(http: httpx.Client) -> None:
    alice, bob = _user(), _user()
    facts = ["I am allergic to peanuts", "My sister lives in Lisbon", "I drive a blue Toyota"]
    r = http.post(
        "/v1/memories/batch", json={"memories": [{"user_id": alice, "content": f} for f in facts]}
    )
    assert r.status_code == 201
    res = _search(http, user_id=alice, query="what food should I avoid?").json()
    assert res["results"][0]["memory"]["content"] == "I am allergic to peanuts"
    scores = [h["score"] for h in res["results"]]
    assert scores == sorted(scores, reverse=True) and len(scores) == 3
    assert res["took_ms"] >= 0
    where = _search(http, user_id=alice, query="where does my sibling live?").json()
    assert where["results"][0]["memory"]["content"] == "My sister lives in Lisbon"
    car = _search(http, user_id=alice, query="what car do I have?").json()
    assert car["results"][0]["memory"]["content"] == "I drive a blue Toyota"
    assert _search(http, user_id=bob, query="what food should I avoid?").json()["results"] == []


def test_vector_search_never_crosses_users(http: httpx.Client) -> None:
    mine, theirs = _user(), _user()
    rng = np.random.default_rng(3)
    target = rng.standard_normal(DIM)
    # The other user holds the exact vector; I hold only distant ones.
    http.post(
        "/v1/memories", json={"user_id": theirs, "content": "secret", "vector": _unit(target)}
    )
    for i in range(5):
        http.post(
            "/v1/memories",
            json={
                "user_id": mine,
                "content": f"mine {i}",
                "vector": _unit(rng.standard_normal(DIM)),
            },
        )
    res = _search(http, user_id=mine, vector=_unit(target), limit=100).json()["results"]
    assert len(res) == 5 and all(h["memory"]["user_id"] == mine for h in res)
    top = _search(http, user_id=theirs, vector=_unit(target), limit=1).json()["results"]
    assert top[0]["memory"]["content"] == "secret" and top[0]["score"] > 0.999


def test_filters(http: httpx.Client) -> None:
    user = _user()
    base = np.random.default_rng(5).standard_normal(DIM)
    rows = [
        ("a0", "agent-a", "s1", {"kind": "food", "stars": 5, "price": 9.5, "vegan": True}),
        ("a1", "agent-a", "s2", {"kind": "travel", "stars": 3, "price": 120.0, "vegan": False}),
        ("b0", "agent-b", "s1", {"kind": "food", "stars": 1, "price": 4.25, "vegan": False}),
        ("b1", "agent-b", "s3", {"kind": "music", "stars": 4, "price": 30.0, "vegan": True}),
    ]
    for i, (content, agent, session, meta) in enumerate(rows):
        r = http.post(
            "/v1/memories",
            json={
                "user_id": user,
                "content": content,
                "agent_id": agent,
                "session_id": session,
                "metadata": meta,
                "vector": _unit(base + 0.01 * i),
            },
        )
        assert r.status_code == 201

    def found(filters: dict[str, object], **extra: object) -> set[str]:
        r = _search(http, user_id=user, vector=_unit(base), limit=10, filters=filters, **extra)
        assert r.status_code == 200, r.text
        return {h["memory"]["content"] for h in r.json()["results"]}

    assert found({}) == {"a0", "a1", "b0", "b1"}
    assert found({"agent_id": "agent-a"}) == {"a0", "a1"}
    assert found({"session_id": "s1"}) == {"a0", "b0"}
    assert found({"metadata": {"kind": "food"}}) == {"a0", "b0"}
    assert found({"metadata": {"stars": 3}}) == {"a1"}
    assert found({"metadata": {"price": 4.25}}) == {"b0"}
    assert found({"metadata": {"vegan": True}}) == {"a0", "b1"}
    assert found({"metadata": {"vegan": False}}) == {"a1", "b0"}
    assert found({"metadata": {"kind": {"in": ["music", "travel"]}}}) == {"a1", "b1"}
    assert found({"metadata": {"stars": {"gte": 3, "lte": 4}}}) == {"a1", "b1"}
    assert found({"metadata": {"price": {"lte": 10}}}) == {"a0", "b0"}
    assert found({"agent_id": "agent-b", "metadata": {"kind": "food"}}) == {"b0"}
    now = dt.datetime.now(dt.UTC)
    assert found({"created_before": (now - dt.timedelta(hours=1)).isoformat()}) == set()
    assert found({"created_after": (now - dt.timedelta(hours=1)).isoformat()}) == {
        "a0",
        "a1",
        "b0",
        "b1",
    }
    assert len(found({}, min_score=0.99999)) <= 1
    limited = _search(http, user_id=user, vector=_unit(base), limit=2).json()["results"]
    assert len(limited) == 2


def test_search_rejects_bad_requests(http: httpx.Client) -> None:
    user = _user()
    cases = [
        ({"user_id": user}, "query"),
        ({"user_id": user, "query": "x", "vector": [0.1] * DIM}, "query"),
        ({"user_id": user, "vector": [0.1, 0.2]}, "vector"),
        ({"user_id": user, "query": "x", "limit": 0}, None),
        ({"user_id": user, "query": "   "}, "query"),
        ({"user_id": "bad user", "query": "x"}, None),
        ({"user_id": user, "query": "x", "limit": "3"}, None),
        ({"user_id": user, "query": "x", "filters": {"nope": 1}}, None),
    ]
    for body, field in cases:
        r = http.post("/v1/search", json=body)
        assert r.status_code == 422, (body, r.text)
        err = r.json()["error"]
        assert err["code"] in {"invalid_input", "dimension_mismatch"} and err["message"]
        if field:
            assert err["details"].get("field", "").startswith(field), (body, err)
