"""Races a hostile or unlucky pair of clients can run, against a real server.

* Two users creating a memory with the same client-chosen id at the same moment:
  exactly one gets 201, the other 409, and nothing the winner stored is overwritten.
* Two admins revoking each other at the same moment: one wins, an admin remains.
* The configured admin key comes back when the server restarts with it still set,
  and an expiring admin key does not count as the one that must remain.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import ADMIN_KEY, ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root: Path = tmp_path_factory.mktemp("races")
    proc = ServerProcess(root / "data").start()
    yield proc
    proc.stop()


def _at_once(*calls: Callable[[], httpx.Response]) -> list[httpx.Response]:
    """Run the calls on threads released together; their answers in order."""
    barrier = threading.Barrier(len(calls))
    answers: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        answers[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return answers


def _key(http: httpx.Client, **spec: Any) -> str:
    r = http.post("/v1/admin/keys", json={"name": f"k-{uuid.uuid4().hex[:6]}", **spec})
    return str(r.raise_for_status().json()["secret"])


def test_two_users_racing_for_one_client_id_one_wins_and_nothing_is_lost(
    server: ServerProcess,
) -> None:
    with server.client() as admin:
        alice_key, bob_key = _key(admin, user_id="alice"), _key(admin, user_id="bob")
    with server.client(alice_key) as alice, server.client(bob_key) as bob:
        for round_ in range(100):
            shared = str(uuid.uuid4())

            a, b = _at_once(
                _create(alice, shared, "alice", round_), _create(bob, shared, "bob", round_)
            )
            assert sorted([a.status_code, b.status_code]) == [201, 409], (a.text, b.text)
            winner, loser = ("alice", alice), ("bob", bob)
            if b.status_code == 201:
                winner, loser = loser, winner
            got = winner[1].get(f"/v1/memories/{shared}", params={"user_id": winner[0]})
            assert got.status_code == 200
            assert got.json()["content"] == f"{winner[0]}'s fact #{round_}"
            assert got.json()["version"] == 1
            history = (
                winner[1]
                .get(f"/v1/memories/{shared}/history", params={"user_id": winner[0]})
                .json()["items"]
            )
            assert [h["content"] for h in history] == [f"{winner[0]}'s fact #{round_}"]
            # The loser was told (409): its memory was never acknowledged, never lost.
            assert (
                loser[1].get(f"/v1/memories/{shared}", params={"user_id": loser[0]}).status_code
                == 404
            )


def _create(
    http: httpx.Client, memory_id: str, user: str, round_: int
) -> Callable[[], httpx.Response]:
    body = {"id": memory_id, "user_id": user, "content": f"{user}'s fact #{round_}"}
    return lambda: http.post("/v1/memories", json=body)


def _revoke(http: httpx.Client, key_id: str) -> Callable[[], httpx.Response]:
    return lambda: http.post(f"/v1/admin/keys/{key_id}/revoke")


def _usable(server: ServerProcess, key: str) -> bool:
    with server.client(key) as http:
        return http.get("/v1/whoami").status_code == 200


def test_admins_revoking_each_other_leave_one_admin(server: ServerProcess) -> None:
    with server.client() as http:
        survivor = _key(http, role="admin", scope="all")
    with server.client(survivor) as http:
        configured = http.get("/v1/admin/keys").json()
        configured_id = next(k["id"] for k in configured if k["name"] == "configured admin")
        assert http.post(f"/v1/admin/keys/{configured_id}/revoke").status_code == 200
    assert not _usable(server, ADMIN_KEY)
    for _ in range(10):
        with server.client(survivor) as http:
            newcomer = _key(http, role="admin", scope="all")
            ids = {k["name"]: k["id"] for k in http.get("/v1/admin/keys").json()}
        with server.client(survivor) as s, server.client(newcomer) as n:
            whoami_s = s.get("/v1/whoami").json()["key_id"]
            whoami_n = n.get("/v1/whoami").json()["key_id"]
            a, b = _at_once(_revoke(s, whoami_n), _revoke(n, whoami_s))
        assert ids  # both keys were listed
        assert sorted([a.status_code, b.status_code]) in ([200, 401], [200, 409]), (a.text, b.text)
        left = [k for k in (survivor, newcomer) if _usable(server, k)]
        assert len(left) == 1, "exactly one admin key remains usable"
        survivor = left[0]
    # An admin key that will expire is not one that may remain alone.
    with server.client(survivor) as http:
        soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        expiring = _key(http, role="admin", scope="all", expires_at=soon)
        mine = http.get("/v1/whoami").json()["key_id"]
    with server.client(expiring) as http:
        refused = http.post(f"/v1/admin/keys/{mine}/revoke")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "conflict"
    assert _usable(server, survivor)


def test_the_configured_admin_key_comes_back_on_restart(server: ServerProcess) -> None:
    # The previous test revoked it; it is still configured.
    server.stop()
    server.start()
    assert _usable(server, ADMIN_KEY)
    with server.client() as http:
        entries = http.get("/v1/admin/audit", params={"limit": 1000}).json()
    restored = [e for e in entries if e["action"] == "key.restore"]
    assert restored and restored[-1]["actor"] == "config"
