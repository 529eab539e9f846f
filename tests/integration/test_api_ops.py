"""Health, readiness, metrics, OpenAPI and the transport-level errors."""

from __future__ import annotations

import httpx


def test_health_ready_metrics(http: httpx.Client) -> None:
    assert http.get("/health").json() == {"status": "ok"}
    ready = http.get("/ready")
    assert ready.status_code == 200 and ready.json()["embedder"] is True
    http.post("/v1/search", json={"user_id": "metrics-user", "query": "anything"})
    text = http.get("/metrics").text
    for name in (
        "membank_requests_total",
        "membank_request_duration_seconds_bucket",
        "membank_search_seconds_bucket",
        "membank_embedding_seconds_bucket",
        "membank_memories",
    ):
        assert name in text, name
    assert 'path="/v1/search"' in text


def test_openapi_documents_every_route_and_error(http: httpx.Client) -> None:
    spec = http.get("/schema/openapi.json").json()
    paths = spec["paths"]
    for path in (
        "/v1/memories",
        "/v1/memories/batch",
        "/v1/memories/{memory_id}",
        "/v1/memories/{memory_id}/history",
        "/v1/search",
        "/health",
        "/ready",
    ):
        assert path in paths, path
    create = paths["/v1/memories"]["post"]["responses"]
    assert {"201", "409", "413", "415", "422", "503"} <= set(create)
    assert "412" in paths["/v1/memories/{memory_id}"]["patch"]["responses"]
    assert "ErrorBody" in str(create["422"])


def test_transport_errors_are_clear_4xx(http: httpx.Client) -> None:
    r = http.post(
        "/v1/memories", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and "JSON" in r.json()["error"]["message"]
    r = http.post("/v1/memories", content=b"user_id=a", headers={"content-type": "text/plain"})
    assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type"
    big = {"user_id": "u", "content": "x" * (1024 * 1024 + 10)}
    r = http.post("/v1/memories", json=big)
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    # The batch route takes up to 16 MiB: 1.2 MiB is fine there (and then fails validation).
    batch = {"memories": [{"user_id": "u", "content": "y" * 8000} for _ in range(160)]}
    r = http.post("/v1/memories/batch", json=batch)
    assert r.status_code == 201, r.text[:300]
    r = http.post(
        "/v1/memories", json={"user_id": "u", "content": "z", "metadata": {"blob": "m" * 17000}}
    )
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "metadata"
    r = http.post("/v1/memories", json={"user_id": "u", "content": "z", "surprise": 1})
    assert r.status_code == 422 and "surprise" in r.json()["error"]["message"]
    r = http.post("/v1/memories", json={"user_id": "u" * 129, "content": "z"})
    assert r.status_code == 422
    r = http.post("/v1/memories", json={"user_id": "u", "content": ""})
    assert r.status_code == 422
    r = http.post(
        "/v1/memories", json={"user_id": "u", "content": "z", "expires_at": "2030-01-01T00:00:00"}
    )
    assert r.status_code == 422 and "timezone" in r.json()["error"]["message"]
    r = http.post("/v1/memories", json=[1, 2])
    assert r.status_code == 422
    r = http.get("/v1/memories/not-a-uuid", params={"user_id": "u"})
    assert r.status_code in (404, 422)
    r = http.post(
        "/v1/memories", json={"user_id": "u", "content": "z"}, headers={"Idempotency-Key": ""}
    )
    assert r.status_code in (400, 422)
