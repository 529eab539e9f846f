"""API keys, teams, admin functions and the audit trail, against a real server process
with authentication on (the BOLA matrices are in test_bola_matrix.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from tests.integration.security_world import World, make_key
from tests.support.server import ADMIN_KEY, ServerProcess


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
    secret = make_key(admin, scope="own", user_id="carol")
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


def test_team_scope(world: World, admin: httpx.Client) -> None:
    team = f"team-{uuid.uuid4().hex[:6]}"
    assert admin.put(f"/v1/admin/teams/{team}/members/{world.alice}").status_code == 204
    assert admin.get(f"/v1/admin/teams/{team}/members").json() == [world.alice]
    key = make_key(admin, scope="team", team=team)
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
    secrets = [make_key(admin, scope="own", user_id=f"u{i}") for i in range(3)]
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
