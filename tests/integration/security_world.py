"""Two users' memories with a key each, made with the admin key: what the security
tests share (test_security.py, test_bola_matrix.py; their fixtures are in conftest.py)."""

from __future__ import annotations

import uuid

import httpx
import numpy as np

from tests.support.server import ServerProcess

__all__ = ["World", "make_key", "vec"]

DIM = 384


def vec(seed: int) -> list[float]:
    v = np.random.default_rng(seed).standard_normal(DIM)
    return [float(x) for x in v / np.linalg.norm(v)]


def make_key(admin: httpx.Client, **spec: object) -> str:
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
        self.alice_key = make_key(admin, scope="own", user_id=self.alice)
        self.bob_key = make_key(admin, scope="own", user_id=self.bob)
        self.bob_ids = []
        for i in range(3):
            r = admin.post(
                "/v1/memories",
                json={
                    "user_id": self.bob,
                    "content": f"bob secret {i} {tag}",
                    "vector": vec(i),
                    "metadata": {"kind": "secret"},
                },
            )
            assert r.status_code == 201
            self.bob_ids.append(r.json()["id"])
        r = admin.post(
            "/v1/memories",
            json={"user_id": self.alice, "content": f"alice note {tag}", "vector": vec(99)},
        )
        self.alice_id = r.json()["id"]
        self.bob_before = self.bob_state(admin)
        self.server = server

    def bob_state(self, admin: httpx.Client) -> list[tuple[str, str, int]]:
        r = admin.get("/v1/memories", params={"user_id": self.bob})
        return sorted((m["id"], m["content"], m["version"]) for m in r.json()["items"])
