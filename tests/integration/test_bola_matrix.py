"""Tenant isolation, route by route: the BOLA matrices (every route a key of one user
may call, tried on another user's data) against a real server with authentication on."""

from __future__ import annotations

import httpx

from tests.integration.security_world import World, vec

__all__: list[str] = []


def test_bola_matrix_memory_endpoints(world: World, admin: httpx.Client) -> None:
    """Alice's key against Bob's memories: every endpoint, never a read, write or hit."""
    bob, bid = world.bob, world.bob_ids[0]
    with world.server.client(key=world.alice_key) as alice:
        answers = {
            "create for bob": alice.post("/v1/memories", json={"user_id": bob, "content": "x"}),
            "create with bob's id": alice.post(
                "/v1/memories", json={"user_id": world.alice, "content": "x", "id": bid}
            ),
            "batch with bob": alice.post(
                "/v1/memories/batch",
                json={
                    "memories": [
                        {"user_id": world.alice, "content": "mine"},
                        {"user_id": bob, "content": "his"},
                    ]
                },
            ),
            "read as bob": alice.get(f"/v1/memories/{bid}", params={"user_id": bob}),
            "read as alice": alice.get(f"/v1/memories/{bid}", params={"user_id": world.alice}),
            "list bob": alice.get("/v1/memories", params={"user_id": bob}),
            "history as bob": alice.get(f"/v1/memories/{bid}/history", params={"user_id": bob}),
            "history as alice": alice.get(
                f"/v1/memories/{bid}/history", params={"user_id": world.alice}
            ),
            "patch as bob": alice.patch(
                f"/v1/memories/{bid}", params={"user_id": bob}, json={"content": "pwned"}
            ),
            "patch as alice": alice.patch(
                f"/v1/memories/{bid}", params={"user_id": world.alice}, json={"content": "pwned"}
            ),
            "delete as bob": alice.delete(f"/v1/memories/{bid}", params={"user_id": bob}),
            "delete as alice": alice.delete(f"/v1/memories/{bid}", params={"user_id": world.alice}),
            "erase bob": alice.delete("/v1/memories", params={"user_id": bob}),
            "search bob": alice.post("/v1/search", json={"user_id": bob, "vector": vec(0)}),
        }
        expected = {"create for bob": 403, "batch with bob": 403, "create with bob's id": 409}
        for name, r in answers.items():
            assert r.status_code == expected.get(name, 404), (name, r.status_code, r.text)
            assert "bob secret" not in r.text, name
        # Alice's own search with Bob's exact vector finds only Alice's memory.
        own = alice.post("/v1/search", json={"user_id": world.alice, "vector": vec(0)})
        assert own.status_code == 200
        assert {h["memory"]["user_id"] for h in own.json()["results"]} == {world.alice}
        # The rejected batch wrote nothing for Alice either.
        mine = alice.get("/v1/memories", params={"user_id": world.alice}).json()["items"]
        assert [m["content"] for m in mine] == [f"alice note {world.alice.split('-')[1]}"]
    assert world.bob_state(admin) == world.bob_before


def test_bola_matrix_admin_endpoints(world: World) -> None:
    with world.server.client(key=world.alice_key) as alice:
        calls = [
            alice.get("/v1/admin/keys"),
            alice.post("/v1/admin/keys", json={"name": "x", "scope": "all"}),
            alice.get("/v1/admin/keys/whatever"),
            alice.post("/v1/admin/keys/whatever/revoke"),
            alice.get("/v1/admin/teams/t/members"),
            alice.put(f"/v1/admin/teams/t/members/{world.alice}"),
            alice.delete(f"/v1/admin/teams/t/members/{world.alice}"),
            alice.get("/v1/admin/audit"),
            alice.get("/v1/admin/encryption"),
            alice.post("/v1/admin/encryption/rotate"),
            alice.post("/v1/admin/backups", json={}),
            alice.get("/v1/admin/backups/schedule"),
            alice.get("/v1/cache/stats"),
            alice.get("/v1/cache/popular"),
            alice.post("/v1/cache/warmup", json={}),
            alice.delete("/v1/cache"),
            alice.get("/v1/collection"),
            alice.get("/v1/admin/history"),
            alice.get("/v1/admin/sli"),
            alice.get("/v1/admin/totals"),
            alice.get("/v1/admin/tenants"),
            alice.get("/v1/admin/tunables"),
            alice.put("/v1/admin/tunables/search.hnsw_ef", json={"value": 64}),
            alice.get("/v1/admin/tuning"),
            alice.post("/v1/admin/tuning", json={"session": "s", "action": "session"}),
        ]
        for r in calls:
            assert r.status_code == 403, (r.request.method, r.request.url.path, r.text)
            assert r.json()["error"]["code"] == "forbidden"


def test_bola_matrix_jobs(world: World, admin: httpx.Client) -> None:
    """Bob's async job: Alice's key can neither see, retry, purge nor reindex it."""
    with world.server.client(key=world.bob_key) as bob:
        r = bob.post(
            "/v1/memories", params={"mode": "async"}, json={"user_id": world.bob, "content": "b"}
        )
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
    with world.server.client(key=world.alice_key) as alice:
        answers = {
            "read": alice.get(f"/v1/jobs/{job_id}"),
            "list bob": alice.get("/v1/jobs", params={"user_id": world.bob}),
            "dead bob": alice.get("/v1/jobs/dead", params={"user_id": world.bob}),
            "retry": alice.post(f"/v1/jobs/{job_id}/retry"),
            "retry item": alice.post(f"/v1/jobs/{job_id}/items/0/retry"),
            "purge": alice.delete(f"/v1/jobs/{job_id}"),
            "reindex bob": alice.post("/v1/jobs/reindex", params={"user_id": world.bob}),
            "dead of all": alice.get("/v1/jobs/dead"),
            "extract for bob": alice.post(
                "/v1/memories/extract",
                json={"user_id": world.bob, "messages": [{"role": "user", "content": "hi"}]},
            ),
        }
    expected = {"dead of all": 403, "extract for bob": 403}
    for name, r in answers.items():
        assert r.status_code == expected.get(name, 404), (name, r.status_code, r.text)
    assert admin.get(f"/v1/jobs/{job_id}").status_code == 200


def test_matrix_covers_every_route(admin: httpx.Client) -> None:
    """A new route must join the matrices above (or be public) to pass."""
    paths = admin.get("/schema/openapi.json").json()["paths"]
    routes = {(m.upper(), p) for p, ops in paths.items() for m in ops}
    covered = {
        ("POST", "/v1/memories"),
        ("POST", "/v1/memories/batch"),
        ("GET", "/v1/memories"),
        ("DELETE", "/v1/memories"),
        ("GET", "/v1/memories/{memory_id}"),
        ("PATCH", "/v1/memories/{memory_id}"),
        ("DELETE", "/v1/memories/{memory_id}"),
        ("GET", "/v1/memories/{memory_id}/history"),
        ("POST", "/v1/search"),
        ("GET", "/v1/admin/keys"),
        ("POST", "/v1/admin/keys"),
        ("GET", "/v1/admin/keys/{key_id}"),
        ("POST", "/v1/admin/keys/{key_id}/revoke"),
        ("GET", "/v1/admin/teams/{team}/members"),
        ("PUT", "/v1/admin/teams/{team}/members/{user_id}"),
        ("DELETE", "/v1/admin/teams/{team}/members/{user_id}"),
        ("GET", "/v1/admin/audit"),
        ("GET", "/v1/admin/encryption"),
        ("POST", "/v1/admin/encryption/rotate"),
        ("POST", "/v1/admin/backups"),
        ("GET", "/v1/admin/backups/schedule"),
        ("GET", "/v1/cache/stats"),
        ("GET", "/v1/cache/popular"),
        ("POST", "/v1/cache/warmup"),
        ("DELETE", "/v1/cache"),
        ("GET", "/v1/collection"),
        ("GET", "/v1/admin/history"),
        ("GET", "/v1/admin/sli"),
        ("GET", "/v1/admin/totals"),
        ("GET", "/v1/admin/tenants"),
        ("GET", "/v1/admin/tunables"),
        ("PUT", "/v1/admin/tunables/{name}"),
        ("GET", "/v1/admin/tuning"),
        ("POST", "/v1/admin/tuning"),
        ("GET", "/v1/jobs"),
        ("GET", "/v1/jobs/{job_id}"),
        ("GET", "/v1/jobs/dead"),
        ("POST", "/v1/jobs/{job_id}/retry"),
        ("POST", "/v1/jobs/{job_id}/items/{index}/retry"),
        ("DELETE", "/v1/jobs/{job_id}"),
        ("POST", "/v1/jobs/reindex"),
        ("POST", "/v1/memories/extract"),
    }
    public = {("GET", "/health"), ("GET", "/ready"), ("GET", "/v1/whoami")}
    assert routes - covered - public == set()
