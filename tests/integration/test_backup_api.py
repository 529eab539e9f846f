"""``POST /v1/admin/backups`` on a real server: refusals are clear 4xx (never a 500),
and a server killed in the middle of a backup leaves nothing that looks complete."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np

from tests.support.server import ADMIN_KEY, ServerProcess

__all__: list[str] = []

DIM = 384


def test_refusals_are_clear(tmp_path: Path) -> None:
    server = ServerProcess(
        tmp_path / "data", env={"MEMBANK_BACKUP__TARGET": str(tmp_path / "empty")}
    ).start()
    try:
        with server.client() as admin:
            made = admin.post(
                "/v1/admin/keys", json={"name": "bk-user", "scope": "own", "user_id": "u1"}
            )
            assert made.status_code == 201, made.text
            with server.client(made.json()["secret"]) as user:
                assert user.post("/v1/admin/backups", json={}).status_code == 403
                assert user.get("/v1/admin/backups/schedule").status_code == 403
            for body, status in [
                ({"target": "/tmp/anywhere"}, 422),  # only the server's backup.target
                ({"incremental": "yes"}, 422),
                ({"whatever": 1}, 422),
                ({"incremental": True}, 404),
            ]:
                answer = admin.post("/v1/admin/backups", json=body)
                if answer.status_code == 200:  # the stream: the outcome is its last line
                    last = json.loads(answer.text.strip().splitlines()[-1])
                    assert last["event"] == "error", last
                    assert last["error"]["code"] == "backup_not_found", last
                    assert status == 404
                    continue
                assert answer.status_code == status, (body, answer.status_code, answer.text)
                assert answer.json()["error"]["message"]
            schedule = admin.get("/v1/admin/backups/schedule")
            assert schedule.status_code == 200 and schedule.json()["cron"] is None
    finally:
        server.stop()


def test_a_server_killed_mid_backup_leaves_no_complete_backup(tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    server = ServerProcess(
        tmp_path / "data",
        env={"MEMBANK_BACKUP__PART_SIZE": str(1024 * 1024), "MEMBANK_BACKUP__TARGET": str(folder)},
    ).start()
    rng = np.random.default_rng(1)
    with server.client() as http:
        for start in range(0, 12_000, 1000):
            vectors = rng.standard_normal((1000, DIM))
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            batch = [
                {"user_id": f"k{(start + i) % 9}", "content": f"note {start + i}", "vector": v}
                for i, v in enumerate(vectors.tolist())
            ]
            assert http.post("/v1/memories/batch", json={"memories": batch}).status_code == 201
        with httpx.stream(
            "POST",
            f"{server.url}/v1/admin/backups",
            json={},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            timeout=120,
        ) as answer:
            assert answer.status_code == 200
            for line in answer.iter_lines():
                event = json.loads(line)
                assert event["event"] == "progress", event  # killed before the end
                if event["done"] > 0 and list(folder.rglob("memories-*")):
                    server.kill()
                    break
    listed = subprocess.run(
        [sys.executable, "-m", "membank_cli", "backup", "list", "--target", str(folder), "--json"],
        env={k: v for k, v in os.environ.items() if not k.startswith("MEMBANK_")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert rows and all(r["status"] != "complete" for r in rows), rows
    assert not list(folder.rglob("manifest.json"))
