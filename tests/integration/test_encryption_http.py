"""Field encryption end to end: a real server with a keys file, nothing in clear on
disk, and `membank keys rotate-data-key --generate --retire` while reads go on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import numpy as np

from tests.support.server import ADMIN_KEY, ServerProcess

DIM = 384
MARK = "zebrafish"


def _vec(seed: int) -> list[float]:
    v = np.random.default_rng(seed).standard_normal(DIM)
    return [float(x) for x in v / np.linalg.norm(v)]


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "membank_cli", *args],
        env={**{k: v for k, v in os.environ.items() if not k.startswith("MEMBANK_")}, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def _raw_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())


def test_encrypted_at_rest_and_rotated_while_serving(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys" / "data-keys.json"
    env = {
        "MEMBANK_SECURITY__ENCRYPTION__ENABLED": "true",
        "MEMBANK_SECURITY__ENCRYPTION__KEYS_FILE": str(keys_file),
        "MEMBANK_SECURITY__ENCRYPTION__METADATA_KEYS": '["email"]',
    }
    made = _cli(env, "keys", "generate-data-key")
    assert made.returncode == 0, made.stderr
    assert oct(keys_file.stat().st_mode & 0o777) == "0o600"
    first = json.loads(keys_file.read_text())["active"]

    server = ServerProcess(tmp_path / "data", env=env).start()
    users = [f"enc-{uuid.uuid4().hex[:6]}-{i}" for i in range(4)]
    try:
        with server.client() as http:
            for u, user in enumerate(users):
                batch = [
                    {
                        "user_id": user,
                        "content": f"{MARK} fact {i} of {user}",
                        "metadata": {"email": f"{user}@example.org", "n": i},
                        "vector": _vec(u * 1000 + i),
                    }
                    for i in range(400)
                ]
                r = http.post("/v1/memories/batch", json={"memories": batch})
                assert r.status_code == 201, r.text
            text = http.post(
                "/v1/search", json={"user_id": users[0], "query": f"{MARK} fact 7"}
            ).json()
            assert text["results"][0]["memory"]["content"].startswith(MARK)
            assert text["results"][0]["memory"]["metadata"]["email"] == f"{users[0]}@example.org"
            refused = http.post(
                "/v1/search",
                json={"user_id": users[0], "query": "x", "filters": {"metadata": {"email": "a"}}},
            )
            assert refused.status_code == 422 and "email" in refused.json()["error"]["message"]
        raw = _raw_bytes(server.data_dir)
        assert MARK.encode() not in raw and b"example.org" not in raw
        assert b"mbenc1|" in raw

        failures: list[str] = []
        reads = [0]
        stop = threading.Event()

        def read_all_the_time() -> None:
            with server.client() as reader:
                while not stop.is_set():
                    user = users[reads[0] % len(users)]
                    r = reader.get("/v1/memories", params={"user_id": user, "limit": 50})
                    items = r.json().get("items", []) if r.status_code == 200 else []
                    if r.status_code != 200 or not all(
                        m["content"].startswith(MARK) for m in items
                    ):
                        failures.append(f"{r.status_code} {r.text[:200]}")
                    reads[0] += 1

        reader = threading.Thread(target=read_all_the_time)
        reader.start()
        try:
            rotated = _cli(
                {**env, "MEMBANK_API_KEY": ADMIN_KEY},
                "keys",
                "rotate-data-key",
                "--generate",
                "--retire",
                "--url",
                server.url,
            )
        finally:
            stop.set()
            reader.join()
        assert rotated.returncode == 0, rotated.stdout + rotated.stderr
        assert failures == [] and reads[0] > 20
        ring = json.loads(keys_file.read_text())
        assert ring["active"] != first and list(ring["keys"]) == [ring["active"]]
        with server.client() as http:
            state = http.get("/v1/admin/encryption").json()
            assert state["usage"] == {ring["active"]: 1600}
            assert state["rotation"]["state"] == "done" and state["rotation"]["done"] == 1600
        server.stop()
        server.start()
        with server.client() as http:
            items = http.get("/v1/memories", params={"user_id": users[3], "limit": 500}).json()
            assert len(items["items"]) == 400
            assert all(m["content"].startswith(MARK) for m in items["items"])
    finally:
        server.stop()
