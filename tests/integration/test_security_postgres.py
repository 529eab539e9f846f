"""The multi-instance set-up: keys and the audit log in PostgreSQL, two servers sharing
them; a key made or revoked on one is honoured by the other."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import ServerProcess


@pytest.fixture(scope="module")
def env(pg_dsn: str) -> dict[str, str]:
    schema = f"sec_{uuid.uuid4().hex[:10]}"
    return {
        "MEMBANK_STORAGE__BACKEND": "pgvector",
        "MEMBANK_STORAGE__POSTGRES__DSN": pg_dsn,
        "MEMBANK_STORAGE__POSTGRES__SCHEMA": schema,
        "MEMBANK_SECURITY__KEYS_BACKEND": "postgres",
        "MEMBANK_SECURITY__AUDIT__SINK": "postgres",
        "MEMBANK_SECURITY__AUDIT__SCHEMA": schema,
        "MEMBANK_SECURITY__KEY_CACHE_SECONDS": "0.5",
    }


@pytest.fixture(scope="module")
def pair(
    tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    root: Path = tmp_path_factory.mktemp("pgsec")
    a = ServerProcess(root / "a", env=env).start()
    b = ServerProcess(root / "b", env=env).start()
    yield a, b
    a.stop()
    b.stop()


def test_keys_and_audit_shared_through_postgres(
    pair: tuple[ServerProcess, ServerProcess], env: dict[str, str]
) -> None:
    a, b = pair
    user = f"pg-{uuid.uuid4().hex[:6]}"
    with a.client() as admin_a:
        made = admin_a.post(
            "/v1/admin/keys", json={"name": "agent", "scope": "own", "user_id": user}
        ).json()
    with b.client(key=made["secret"]) as on_b:
        created = on_b.post("/v1/memories", json={"user_id": user, "content": "likes tea"})
        assert created.status_code == 201
        mid = created.json()["id"]
        deleted = on_b.delete(f"/v1/memories/{mid}", params={"user_id": user})
        assert deleted.status_code == 204
        with a.client() as admin_a:
            assert admin_a.post(f"/v1/admin/keys/{made['key']['id']}/revoke").status_code == 200
        time.sleep(0.6)  # B trusted the key for key_cache_seconds
        assert on_b.get("/v1/whoami").status_code == 401
    with b.client() as admin_b:
        entries = admin_b.get("/v1/admin/audit", params={"limit": 50}).json()
    actions = [(e["action"], e["actor"]) for e in entries]
    assert any(act == "memory.delete" and who == made["key"]["id"] for act, who in actions)
    assert any(act == "key.revoke" for act, _ in actions)
    assert any(act == "auth.bad_key" for act, _ in actions)
    tail = subprocess.run(
        [sys.executable, "-m", "membank_cli", "audit", "tail", "-n", "50", "--json"],
        env={**{k: v for k, v in os.environ.items() if not k.startswith("MEMBANK_")}, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert tail.returncode == 0, tail.stderr
    lines = [json.loads(line) for line in tail.stdout.splitlines() if line.strip()]
    assert any(e["action"] == "memory.delete" and mid in e["target"] for e in lines)
    assert made["secret"][len("mbk_") + 13 :] not in tail.stdout
