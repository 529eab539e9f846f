"""``membank backup`` as an operator runs it: real processes, SeaweedFS, PostgreSQL.

A real server on the embedded store with field encryption owns its data folder, so
``membank backup run`` goes through it (``POST /v1/admin/backups``) to S3 and to a
local folder, sealed with a backup key. ``list`` shows it complete, ``verify`` checks
every part (and refuses another backup key), then the server stops and ``restore
--into pgvector`` moves the data to PostgreSQL: a server on pgvector with the same
data keys answers every user's memories, metadata and history as the first did, and
no user's list holds another's memory.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import numpy as np
import pytest

from tests.support.seaweedfs import S3Service
from tests.support.server import ADMIN_KEY, ServerProcess

__all__: list[str] = []

DIM = 384
USERS = ("bk-alice", "bk-bob", "bk-carol")


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


def _secret_file(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o600)
    return str(path)


def _everything(http: httpx.Client) -> dict[str, dict[str, Any]]:
    """Every user's live memories by id, with their history."""
    out: dict[str, dict[str, Any]] = {}
    for user in USERS:
        cursor = None
        while True:
            params: dict[str, Any] = {"user_id": user, "limit": 500}
            if cursor:
                params["cursor"] = cursor
            page = http.get("/v1/memories", params=params)
            assert page.status_code == 200, page.text
            body = page.json()
            for m in body["items"]:
                assert m["user_id"] == user
                events = http.get(f"/v1/memories/{m['id']}/history", params={"user_id": user})
                assert events.status_code == 200, events.text
                out[m["id"]] = {**m, "history": events.json()}
            cursor = body.get("next_cursor")
            if not cursor:
                break
    return out


def _top10(http: httpx.Client) -> list[list[tuple[str, float]]]:
    """The ten nearest memories (ids, rounded scores) of a fixed query per user."""
    found = []
    for u, user in enumerate(USERS):
        hit = http.post("/v1/search", json={"user_id": user, "vector": _vec(5000 + u)})
        assert hit.status_code == 200, hit.text
        found.append([(r["memory"]["id"], round(r["score"], 4)) for r in hit.json()["results"]])
    return found


def _lexical(http: httpx.Client) -> list[set[str]]:
    """Per user, the ids a lexical search for a word only edited memories hold finds."""
    found = []
    for user in USERS:
        hit = http.post(
            "/v1/search", json={"user_id": user, "query": "edited", "mode": "lexical", "limit": 50}
        )
        assert hit.status_code == 200, hit.text
        found.append({r["memory"]["id"] for r in hit.json()["results"]})
    return found


@pytest.fixture
def pg_schema_name(pg_dsn: str) -> Any:
    name = f"bk_{uuid.uuid4().hex[:10]}"
    yield name

    async def drop() -> None:
        conn = await asyncpg.connect(pg_dsn)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        finally:
            await conn.close()

    import asyncio

    asyncio.run(drop())


def test_run_through_the_server_verify_and_restore_into_pgvector(
    tmp_path: Path, s3: S3Service, pg_dsn: str, pg_schema_name: str
) -> None:
    data_keys = tmp_path / "keys" / "data-keys.json"
    env = {
        "MEMBANK_SECURITY__ENCRYPTION__ENABLED": "true",
        "MEMBANK_SECURITY__ENCRYPTION__KEYS_FILE": str(data_keys),
        "MEMBANK_SECURITY__ENCRYPTION__METADATA_KEYS": '["email"]',
        "MEMBANK_BACKUP__KEY_FILE": _secret_file(
            tmp_path / "keys" / "backup.key", base64.b64encode(os.urandom(32)).decode()
        ),
        "MEMBANK_BACKUP__S3__ENDPOINT_URL": s3.endpoint,
        "MEMBANK_BACKUP__S3__ACCESS_KEY": s3.access_key,
        "MEMBANK_BACKUP__S3__SECRET_KEY": s3.secret_key,
        "MEMBANK_BACKUP__S3__REGION": "us-east-1",
        "MEMBANK_BACKUP__S3__RETRIES": "1",
    }
    assert _cli(env, "keys", "generate-data-key").returncode == 0
    s3_target = f"s3://{s3.bucket}/cli-{uuid.uuid4().hex}"
    server = ServerProcess(tmp_path / "data", env={**env, "MEMBANK_BACKUP__TARGET": s3_target})
    server.start()
    cli_env = {
        **env,
        "MEMBANK_STORAGE__EDGE__PATH": str(server.data_dir),
        "MEMBANK_SERVER__PORT": str(server.port),
        "MEMBANK_API_KEY": ADMIN_KEY,
    }
    folder = tmp_path / "backups"
    try:
        with server.client() as http:
            for u, user in enumerate(USERS):
                batch = [
                    {
                        "user_id": user,
                        "content": f"fact {i} of {user}",
                        "metadata": {"email": f"{user}@example.org", "n": i},
                        "vector": _vec(u * 1000 + i),
                    }
                    for i in range(120)
                ]
                made = http.post("/v1/memories/batch", json={"memories": batch})
                assert made.status_code == 201, made.text
            ids = {user: [m["id"] for m in _everything(http).values() if m["user_id"] == user]
                   for user in USERS}  # fmt: skip
            for user in USERS:
                for n, memory_id in enumerate(ids[user][:15]):
                    changed = http.patch(
                        f"/v1/memories/{memory_id}",
                        params={"user_id": user},
                        json={"content": f"fact {n} of {user}, edited", "vector": _vec(9000 + n)},
                    )
                    assert changed.status_code == 200, changed.text
                for memory_id in ids[user][15:20]:
                    gone = http.delete(f"/v1/memories/{memory_id}", params={"user_id": user})
                    assert gone.status_code == 204, gone.text
            before = _everything(http)
            found_before = _top10(http)
            lexical_before = _lexical(http)
        assert [len(ids) for ids in lexical_before] == [15] * len(USERS)
        assert len(before) == len(USERS) * 115

        ran = _cli(cli_env, "backup", "run", "--json")  # to the server's backup.target
        assert ran.returncode == 0, ran.stderr
        assert "the server at" in ran.stderr  # the data folder is the server's
        done = json.loads(ran.stdout)
        assert done["records"] == len(USERS) * 120  # tombstones too
        assert done["users"] == len(USERS)
        elsewhere = _cli(cli_env, "backup", "run", "--target", str(folder))
        assert elsewhere.returncode != 0 and "backup.target" in elsewhere.stderr

        listed = _cli(cli_env, "backup", "list", "--target", s3_target, "--json")
        assert listed.returncode == 0, listed.stderr
        [row] = json.loads(listed.stdout)
        assert row["id"] == done["id"] and row["status"] == "complete"
        assert row["memories"] == len(USERS) * 120

        checked = _cli(cli_env, "backup", "verify", done["id"], "--target", s3_target, "--json")
        assert checked.returncode == 0, checked.stderr
        assert json.loads(checked.stdout)["records"] > 0
        other_key = _secret_file(tmp_path / "other.key", base64.b64encode(os.urandom(32)).decode())
        wrong = _cli(
            {**cli_env, "MEMBANK_BACKUP__KEY_FILE": other_key},
            "backup", "verify", done["id"], "--target", s3_target,
        )  # fmt: skip
        assert wrong.returncode != 0
        assert "key" in wrong.stderr.lower() and "Traceback" not in wrong.stderr
        for secret in (
            Path(other_key).read_text(),
            Path(env["MEMBANK_BACKUP__KEY_FILE"]).read_text(),
        ):
            assert secret not in wrong.stderr + wrong.stdout
    finally:
        server.stop()

    # The server stopped: the backup runs here, to a local folder; then prune.
    local = _cli(cli_env, "backup", "run", "--target", str(folder), "--json")
    assert local.returncode == 0, local.stderr
    assert json.loads(local.stdout)["records"] == len(USERS) * 120
    newer = _cli(cli_env, "backup", "run", "--target", str(folder), "--json")
    assert newer.returncode == 0, newer.stderr
    older_id, newer_id = json.loads(local.stdout)["id"], json.loads(newer.stdout)["id"]
    prune = ["backup", "prune", "--keep-last", "1", "--keep-daily", "0", "--keep-weekly", "0",
             "--keep-monthly", "0", "--target", str(folder), "--json"]  # fmt: skip
    dry = _cli(cli_env, *prune, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["delete"] == [older_id]
    assert (folder / older_id / "manifest.json").exists()
    pruned = _cli(cli_env, *prune)
    assert pruned.returncode == 0, pruned.stderr
    assert [k["id"] for k in json.loads(pruned.stdout)["keep"]] == [newer_id]
    assert not (folder / older_id).exists()

    raw = b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())
    assert b"example.org" not in raw and b"fact 3 of" not in raw

    pg = {
        "MEMBANK_STORAGE__POSTGRES__DSN": pg_dsn,
        "MEMBANK_STORAGE__POSTGRES__SCHEMA": pg_schema_name,
    }
    into = _cli(
        {**cli_env, **pg}, "backup", "restore", done["id"], "--into", "pgvector",
        "--target", s3_target, "--json",
    )  # fmt: skip
    assert into.returncode == 0, into.stderr
    assert json.loads(into.stdout)["records"] == len(USERS) * 120
    again = _cli(
        {**cli_env, **pg}, "backup", "restore", done["id"], "--into", "pgvector",
        "--target", s3_target,
    )  # fmt: skip
    assert again.returncode != 0 and "--force" in again.stderr  # not into a non-empty store

    moved = ServerProcess(
        tmp_path / "data-pg", env={**env, **pg, "MEMBANK_STORAGE__BACKEND": "pgvector"}
    ).start()
    try:
        with moved.client() as http:
            after = _everything(http)
            found_after = _top10(http)
            # Sealed content restored: its keyed lexical terms come back with it.
            lexical_after = _lexical(http)
    finally:
        moved.stop()
    assert lexical_after == lexical_before
    assert after == before
    # A backup of the PostgreSQL store: one snapshot, and pg_dump's custom format with it.
    on_pg = {
        **cli_env,
        **pg,
        "MEMBANK_STORAGE__BACKEND": "pgvector",
        "MEMBANK_STORAGE__EDGE__PATH": str(tmp_path / "data-pg"),
        "MEMBANK_BACKUP__PG_BIN": os.environ["MBTEST_PG_BIN"],
    }
    ran_pg = _cli(on_pg, "backup", "run", "--target", str(folder), "--json")
    assert ran_pg.returncode == 0, ran_pg.stderr
    pg_backup = json.loads(ran_pg.stdout)
    assert pg_backup["records"] == len(USERS) * 120
    assert "pg_dump" in pg_backup["sections"]
    checked_pg = _cli(on_pg, "backup", "verify", pg_backup["id"], "--target", str(folder))
    assert checked_pg.returncode == 0, checked_pg.stderr
    assert found_after == found_before
    assert sum(len(m["history"]["items"]) for m in after.values()) == len(after) + 15 * len(USERS)
    assert {m["metadata"]["email"] for m in after.values()} == {f"{u}@example.org" for u in USERS}


def test_bench_backup_prints_its_figures() -> None:
    ran = _cli({}, "bench", "backup", "--memories", "300", "--users", "7", "--json")
    assert ran.returncode == 0, ran.stderr
    figures = json.loads(ran.stdout)
    assert figures["memories"] == 300 and figures["dimension"] == DIM
    assert figures["stored_bytes"] > 0 and figures["restore_seconds"] > 0
