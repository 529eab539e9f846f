"""API keys, tenant isolation (the BOLA matrix), admin functions and the audit trail,
against a real server process with authentication on."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.support.server import ADMIN_KEY, ServerProcess

DIM = 384


def _vec(seed: int) -> list[float]:
    v = np.random.default_rng(seed).standard_normal(DIM)
    return [float(x) for x in v / np.linalg.norm(v)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("secure") / "data")
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def admin(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def _key(admin: httpx.Client, **spec: object) -> str:
    r = admin.post("/v1/admin/keys", json={"name": f"k-{uuid.uuid4().hex[:6]}", **spec})
    assert r.status_code == 201, r.text
    body = r.json()
    assert "digest" not in body["key"]
    return str(body["secret"])


class World:
    """Two users' memories and a key for each, made with the admin key."""

    def __init__(self, server: ServerProcess, admin: httpx.Client) -> None:
        tag = uuid.uuid4().hex[:8]
        self.alice, self.bob = f"alice-{tag}", f"bob-{tag}"
        self.alice_key = _key(admin, scope="own", user_id=self.alice)
        self.bob_key = _key(admin, scope="own", user_id=self.bob)
        self.bob_ids = []
        for i in range(3):
            r = admin.post(
                "/v1/memories",
                json={
                    "user_id": self.bob,
                    "content": f"bob secret {i} {tag}",
                    "vector": _vec(i),
                    "metadata": {"kind": "secret"},
                },
            )
            assert r.status_code == 201
            self.bob_ids.append(r.json()["id"])
        r = admin.post(
            "/v1/memories",
            json={"user_id": self.alice, "content": f"alice note {tag}", "vector": _vec(99)},
        )
        self.alice_id = r.json()["id"]
        self.bob_before = self.bob_state(admin)
        self.server = server

    def bob_state(self, admin: httpx.Client) -> list[tuple[str, str, int]]:
        r = admin.get("/v1/memories", params={"user_id": self.bob})
        return sorted((m["id"], m["content"], m["version"]) for m in r.json()["items"])


@pytest.fixture
def world(server: ServerProcess, admin: httpx.Client) -> World:
    return World(server, admin)


def test_requests_without_a_usable_key_are_401(server: ServerProcess) -> None:
    with server.client(key=None) as anon:
        r = anon.get("/v1/memories", params={"user_id": "u1"})
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert r.json()["error"]["code"] == "unauthorized"
        assert anon.get("/health").status_code == 200
        assert anon.get("/ready").status_code == 200
        assert anon.get("/schema/openapi.json").status_code == 200
    with server.client(key="mbk_000000000000_" + "x" * 43) as bad:
        assert bad.get("/v1/whoami").status_code == 401


def test_key_lifecycle_and_revocation(admin: httpx.Client, server: ServerProcess) -> None:
    secret = _key(admin, scope="own", user_id="carol")
    with server.client(key=secret) as carol:
        who = carol.get("/v1/whoami").json()
        assert who["scope"] == "own" and who["user_id"] == "carol" and who["role"] == "user"
        assert carol.post("/v1/memories", json={"user_id": "carol", "content": "hi"}).is_success
        listed = {k["id"]: k for k in admin.get("/v1/admin/keys").json()}
        assert who["key_id"] in listed
        assert all("secret" not in k and "digest" not in k for k in listed.values())
        revoked = admin.post(f"/v1/admin/keys/{who['key_id']}/revoke")
        assert revoked.status_code == 200 and revoked.json()["revoked_at"]
        assert carol.get("/v1/whoami").status_code == 401
    assert admin.get("/v1/admin/keys/nope").status_code == 404


def test_the_last_admin_key_cannot_be_revoked(admin: httpx.Client) -> None:
    keys = admin.get("/v1/admin/keys").json()
    admins = [k for k in keys if k["role"] == "admin" and not k["revoked_at"]]
    assert len(admins) == 1
    r = admin.post(f"/v1/admin/keys/{admins[0]['id']}/revoke")
    assert r.status_code == 409


@pytest.mark.parametrize(
    "spec",
    [
        {"scope": "own"},
        {"scope": "team"},
        {"scope": "own", "user_id": "x", "team": "t"},
        {"role": "admin", "scope": "own", "user_id": "x"},
        {"scope": "all", "user_id": "x"},
        {"scope": "own", "user_id": "x", "expires_at": 1},
        {"scope": "own", "user_id": "x", "digest": "abc"},
    ],
)
def test_bad_key_specs_are_422(admin: httpx.Client, spec: dict[str, object]) -> None:
    r = admin.post("/v1/admin/keys", json={"name": "bad", **spec})
    assert r.status_code == 422, r.text


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
            "search bob": alice.post("/v1/search", json={"user_id": bob, "vector": _vec(0)}),
        }
        expected = {"create for bob": 403, "batch with bob": 403, "create with bob's id": 409}
        for name, r in answers.items():
            assert r.status_code == expected.get(name, 404), (name, r.status_code, r.text)
            assert "bob secret" not in r.text, name
        # Alice's own search with Bob's exact vector finds only Alice's memory.
        own = alice.post("/v1/search", json={"user_id": world.alice, "vector": _vec(0)})
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
            alice.get("/v1/cache/stats"),
            alice.get("/v1/cache/popular"),
            alice.post("/v1/cache/warmup", json={}),
            alice.delete("/v1/cache"),
            alice.get("/v1/collection"),
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
        ("GET", "/v1/cache/stats"),
        ("GET", "/v1/cache/popular"),
        ("POST", "/v1/cache/warmup"),
        ("DELETE", "/v1/cache"),
        ("GET", "/v1/collection"),
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


def test_team_scope(world: World, admin: httpx.Client) -> None:
    team = f"team-{uuid.uuid4().hex[:6]}"
    assert admin.put(f"/v1/admin/teams/{team}/members/{world.alice}").status_code == 204
    assert admin.get(f"/v1/admin/teams/{team}/members").json() == [world.alice]
    key = _key(admin, scope="team", team=team)
    with world.server.client(key=key) as member:
        r = member.get(f"/v1/memories/{world.alice_id}", params={"user_id": world.alice})
        assert r.status_code == 200
        bob = member.get(f"/v1/memories/{world.bob_ids[0]}", params={"user_id": world.bob})
        assert bob.status_code == 404
        assert admin.delete(f"/v1/admin/teams/{team}/members/{world.alice}").status_code == 204
    # Removal is seen at once by the instance that made it.
    with world.server.client(key=key) as member:
        r = member.get(f"/v1/memories/{world.alice_id}", params={"user_id": world.alice})
        assert r.status_code == 404


@pytest.mark.parametrize(
    "field", ["user_id", "id", "version", "created_at", "updated_at", "content_hash"]
)
def test_patch_cannot_change_server_fields(world: World, field: str) -> None:
    with world.server.client(key=world.alice_key) as alice:
        r = alice.patch(
            f"/v1/memories/{world.alice_id}",
            params={"user_id": world.alice},
            json={"content": "changed", field: "x"},
        )
        assert r.status_code == 422
        assert field in r.json()["error"]["message"]
        got = alice.get(f"/v1/memories/{world.alice_id}", params={"user_id": world.alice})
        assert got.json()["version"] == 1 and got.json()["user_id"] == world.alice


def test_security_headers_and_request_id(world: World) -> None:
    with world.server.client(key=world.alice_key) as alice:
        r = alice.get("/v1/whoami", headers={"X-Request-ID": "req-123"})
        assert r.headers["x-request-id"] == "req-123"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["cache-control"] == "no-store"
        assert "access-control-allow-origin" not in r.headers
        assert int(r.headers["ratelimit-limit"]) > 0
        assert (
            alice.get("/v1/whoami", headers={"X-Request-ID": "bad id!"}).headers["x-request-id"]
            != "bad id!"
        )


def test_deletes_erases_admin_actions_and_failures_are_audited(
    world: World, admin: httpx.Client, server: ServerProcess
) -> None:
    with server.client(key=world.bob_key) as bob:
        who = bob.get("/v1/whoami").json()["key_id"]
        mid = world.bob_ids[1]
        r = bob.delete(f"/v1/memories/{mid}", params={"user_id": world.bob})
        assert r.status_code == 204
        request_id = r.headers["x-request-id"]
        assert bob.delete("/v1/memories", params={"user_id": world.bob}).status_code == 200
    with server.client(key="mbk_abcdefabcdef_nope") as bad:
        assert bad.get("/v1/whoami").status_code == 401
    entries = admin.get("/v1/admin/audit", params={"limit": 200}).json()
    by_action: dict[str, list[dict[str, object]]] = {}
    for e in entries:
        by_action.setdefault(str(e["action"]), []).append(e)
    delete = next(e for e in by_action["memory.delete"] if e["request_id"] == request_id)
    assert delete["actor"] == who and delete["result"] == "ok" and delete["status"] == 204
    assert f"memory_id={mid}" in str(delete["target"])
    assert any(e["actor"] == who for e in by_action["memory.erase_user"])
    assert any(e["target"] == "key:abcdefabcdef" for e in by_action["auth.bad_key"])
    assert by_action["key.create"]
    # The same entries are in the file, which only grows.
    log = Path(server.data_dir / "audit.log").read_text()
    assert request_id in log


def test_no_key_material_in_logs_or_audit(server: ServerProcess, admin: httpx.Client) -> None:
    secrets = [_key(admin, scope="own", user_id=f"u{i}") for i in range(3)]
    for secret in secrets:
        with server.client(key=secret) as c:
            c.get("/v1/whoami")
        with server.client(key=secret + "x") as c:
            c.get("/v1/whoami")
    texts = [server.log.read_text(), (server.data_dir / "audit.log").read_text()]
    keys_db = (server.data_dir / "keys.db").read_bytes()
    for secret in [*secrets, ADMIN_KEY]:
        tail = secret[len("mbk_") + 13 :]
        for text in texts:
            assert tail not in text
        assert tail.encode() not in keys_db
    assert oct((server.data_dir / "keys.db").stat().st_mode & 0o777) == "0o600"
    assert oct((server.data_dir / "audit.log").stat().st_mode & 0o777) == "0o600"


def test_first_start_creates_an_admin_key_and_prints_it_once(tmp_path: Path) -> None:
    proc = ServerProcess(tmp_path / "data", env={"MEMBANK_SECURITY__ADMIN_KEY": ""})
    proc.start()
    try:
        printed = [w for w in proc.log.read_text().split() if w.startswith("mbk_")]
        assert len(printed) == 1
        with proc.client(key=printed[0]) as first:
            assert first.get("/v1/whoami").json()["role"] == "admin"
    finally:
        proc.stop()
    proc.start()
    try:
        assert len([w for w in proc.log.read_text().split() if w.startswith("mbk_")]) == 1
    finally:
        proc.stop()


def test_keys_cli_creates_lists_and_revokes(tmp_path: Path) -> None:
    env = {"MEMBANK_STORAGE__EDGE__PATH": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "membank_cli", "keys", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    made = cli("create", "agent", "--scope", "own", "--user", "dana", "--json")
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    assert created["secret"].startswith("mbk_") and created["key"]["user_id"] == "dana"
    listed = json.loads(cli("list", "--json").stdout)
    assert [k["id"] for k in listed] == [created["key"]["id"]]
    assert created["secret"] not in cli("list").stdout
    assert cli("revoke", created["key"]["id"]).returncode == 0
    assert json.loads(cli("list", "--json").stdout)[0]["revoked_at"]
    bad = cli("create", "x", "--scope", "own")
    assert bad.returncode != 0 and "user_id" in bad.stderr
    audit = (tmp_path / "data" / "audit.log").read_text()
    assert "key.create" in audit and "key.revoke" in audit
    assert created["secret"][len("mbk_") + 13 :] not in audit


def test_idempotency_ids_cannot_be_taken_by_another_user(world: World, admin: httpx.Client) -> None:
    """The id an Idempotency-Key stands for is keyed by a server secret: another
    user cannot compute it and take it first."""
    public = uuid.uuid5(
        uuid.UUID("6f1c9a52-3a77-4c55-9d3e-2b0c7a9e8d41"), f"{world.alice}\norder-1"
    )
    with world.server.client(key=world.bob_key) as bob:
        squat = bob.post(
            "/v1/memories", json={"user_id": world.bob, "content": "x", "id": str(public)}
        )
        assert squat.status_code == 201
    with world.server.client(key=world.alice_key) as alice:
        body = {"user_id": world.alice, "content": "order 1 placed"}
        first = alice.post("/v1/memories", json=body, headers={"Idempotency-Key": "order-1"})
        replay = alice.post("/v1/memories", json=body, headers={"Idempotency-Key": "order-1"})
    assert first.status_code == 201 and replay.status_code == 201
    assert first.json()["id"] == replay.json()["id"] != str(public)


def test_changing_the_configured_admin_key_revokes_the_old_one(tmp_path: Path) -> None:
    old, new = "old-admin-key-" + "o" * 30, "new-admin-key-" + "n" * 30
    proc = ServerProcess(tmp_path / "data", env={"MEMBANK_SECURITY__ADMIN_KEY": old}).start()
    proc.stop()
    proc.env["MEMBANK_SECURITY__ADMIN_KEY"] = new
    proc.start()
    try:
        with proc.client(key=old) as stale, proc.client(key=new) as fresh:
            assert stale.get("/v1/admin/keys").status_code == 401
            assert fresh.get("/v1/admin/keys").status_code == 200
    finally:
        proc.stop()


def test_key_requests_with_odd_values_are_4xx(admin: httpx.Client) -> None:
    naive = admin.post(
        "/v1/admin/keys",
        json={"name": "n", "scope": "own", "user_id": "x", "expires_at": "2030-01-01T00:00:00"},
    )
    assert naive.status_code == 422
    assert (
        admin.post(
            "/v1/admin/keys", json={"name": "a\u0000b", "scope": "own", "user_id": "x"}
        ).status_code
        == 422
    )
    assert admin.get("/v1/admin/keys/a%00b").status_code in (400, 404, 422)
    assert admin.put("/v1/admin/teams/t%00/members/u").status_code in (400, 404, 422)


def test_audit_names_the_user_the_handler_acted_on(world: World, admin: httpx.Client) -> None:
    erased = admin.delete("/v1/memories", params=[("user_id", world.alice), ("user_id", world.bob)])
    assert erased.status_code == 200
    request_id = erased.headers["x-request-id"]
    alice_left = admin.get("/v1/memories", params={"user_id": world.alice}).json()["items"]
    bob_left = admin.get("/v1/memories", params={"user_id": world.bob}).json()["items"]
    acted_on = world.alice if not alice_left else world.bob
    assert not (alice_left and bob_left)
    entry = next(
        e
        for e in admin.get("/v1/admin/audit", params={"limit": 100}).json()
        if e["request_id"] == request_id
    )
    assert entry["target"] == f"user_id={acted_on}"


def test_failures_with_control_characters_are_audited(
    server: ServerProcess, admin: httpx.Client
) -> None:
    with server.client(key="mbk_abcdefabcd00_x") as bad:
        r = bad.get("/v1/admin/keys/a%00b%0a")
        assert r.status_code == 401
        request_id = r.headers["x-request-id"]
    entry = next(
        e
        for e in admin.get("/v1/admin/audit", params={"limit": 100}).json()
        if e["request_id"] == request_id
    )
    assert "\x00" not in entry["details"]["path"] and "\n" not in entry["details"]["path"]
