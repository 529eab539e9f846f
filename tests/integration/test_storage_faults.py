"""The embedded store under faults, with real processes and real filesystems.

* A disk that fills: the data folder on a small tmpfs this test mounts (as root; it
  skips, saying why, only where mounting is impossible). Writes get 507 before the
  disk is full, reads and searches go on, nothing crashes and nothing acknowledged
  is lost; writes come back once space is freed; a start on a disk too full to open
  the store safely waits for space instead of crashing.
* A second server on the same folder is refused before it touches anything: the
  first keeps writing and its admin key is unchanged, whichever key the second had.
* A shutdown under a load of large batches: every answer is JSON, every acknowledged
  write is there after a restart, and the exit status tells a clean shutdown.
"""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import ADMIN_KEY, AUTH, ServerProcess, free_port

MiB = 1024 * 1024


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=192m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _resize(mount: Path, mib: int) -> None:
    subprocess.run(["mount", "-o", f"remount,size={mib}m", str(mount)], check=True)


def _free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _batch(n: int, size: int = 4000) -> dict[str, object]:
    return {
        "memories": [
            {"user_id": f"u{i % 7}", "content": f"fill {uuid.uuid4().hex} " + "x" * size}
            for i in range(n)
        ]
    }


def test_a_filling_disk_refuses_writes_keeps_reads_and_recovers(tmpfs: Path) -> None:
    server = ServerProcess(
        tmpfs / "data",
        env={"MEMBANK_STORAGE__DISK_RESERVE_BYTES": str(64 * MiB)},
    ).start()
    acknowledged: list[str] = []
    try:
        with server.client() as http:
            for _ in range(200):
                r = http.post("/v1/memories/batch", json=_batch(50))
                if r.status_code == 507:
                    break
                assert r.status_code == 201, r.text
                acknowledged.extend(m["id"] for m in r.json()["items"])
            else:
                pytest.fail("the disk never filled")
            assert r.json()["error"]["code"] == "insufficient_storage"
            # A batch too big for what is left is refused first; small writes go on
            # until the reserve itself is reached.
            for i in range(20_000):
                r = http.post("/v1/memories", json={"user_id": "u0", "content": f"small {i}"})
                if r.status_code == 507:
                    break
                assert r.status_code == 201, r.text
                acknowledged.append(r.json()["id"])
            assert _free(tmpfs) > 32 * MiB, "refused while the store still had room to work"
            # Reads and searches go on; /ready says writes are refused.
            first = acknowledged[0]
            got = http.get(f"/v1/memories/{first}", params={"user_id": "u0"})
            assert got.status_code in (200, 404)  # 404: the id belongs to another u*
            listed = http.get("/v1/memories", params={"user_id": "u0", "limit": 5})
            assert listed.status_code == 200 and listed.json()["items"]
            found = http.post("/v1/search", json={"user_id": "u0", "query": "fill"})
            assert found.status_code == 200
            ready = http.get("/ready").json()
            assert ready["status"] == "degraded" and ready["writes"].startswith("refused")
            one = http.post("/v1/memories", json={"user_id": "u0", "content": "one more"})
            assert one.status_code == 507
            # Deletes still pass: they are how space is freed.
            doomed = listed.json()["items"][0]["id"]
            assert (
                http.delete(f"/v1/memories/{doomed}", params={"user_id": "u0"}).status_code == 204
            )
            acknowledged.remove(doomed)

            _resize(tmpfs, 512)  # space freed
            again = http.post("/v1/memories", json={"user_id": "u0", "content": "room again"})
            assert again.status_code == 201
            acknowledged.append(again.json()["id"])
            assert http.get("/ready").json()["status"] == "ready"
        assert server.proc is not None and server.proc.poll() is None, "the server never crashed"
    finally:
        server.stop()

    # Restart on a disk too full to open the store safely: the server waits for space.
    ballast = tmpfs / "ballast"
    _resize(tmpfs, 512)
    with open(ballast, "wb") as fh:
        fh.write(b"\0" * max(0, _free(tmpfs) - 8 * MiB))
    server.start_unready()
    try:
        with server.client() as http:
            waiting = http.get("/ready")
            assert waiting.status_code == 503
            assert "free" in waiting.json()["error"]["message"]
            ballast.unlink()
            deadline = time.monotonic() + 60
            while http.get("/ready").status_code != 200 and time.monotonic() < deadline:
                time.sleep(0.5)
            assert http.get("/ready").status_code == 200
            missing = [
                i
                for i in acknowledged
                if all(
                    http.get(f"/v1/memories/{i}", params={"user_id": f"u{u}"}).status_code != 200
                    for u in range(7)
                )
            ]
            assert not missing, f"{len(missing)} acknowledged memories lost"
    finally:
        server.stop()


@pytest.mark.parametrize("second_key", ["same", "different"])
def test_a_second_server_on_the_folder_is_refused_and_changes_nothing(
    tmp_path: Path, second_key: str
) -> None:
    first = ServerProcess(tmp_path / "data").start()
    try:
        with first.client() as http:
            before = http.post("/v1/memories", json={"user_id": "u", "content": "before"})
            assert before.status_code == 201
        other_key = ADMIN_KEY if second_key == "same" else "another-admin-key-0123456789abcdef"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("MEMBANK_")},
            "MEMBANK_STORAGE__EDGE__PATH": str(tmp_path / "data"),
            "MEMBANK_SERVER__PORT": str(free_port()),
            "MEMBANK_SECURITY__ADMIN_KEY": other_key,
        }
        second = subprocess.run(
            [sys.executable, "-m", "membank_cli", "serve"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 3
        assert "in use by another membank process" in second.stderr
        with first.client() as http:
            after = http.post("/v1/memories", json={"user_id": "u", "content": "after"})
            assert after.status_code == 201, "the first still writes"
            assert http.get("/v1/whoami").status_code == 200, "its admin key unchanged"
        with first.client(other_key) as other:
            expected = 200 if second_key == "same" else 401
            assert other.get("/v1/whoami").status_code == expected
    finally:
        first.stop()
    first.start()
    try:
        with first.client() as http:
            assert http.get("/v1/whoami").status_code == 200, "and after a restart too"
            mine = http.get("/v1/memories", params={"user_id": "u"}).json()["items"]
            assert {m["content"] for m in mine} == {"before", "after"}
    finally:
        first.stop()


def test_shutdown_under_load_answers_json_and_keeps_every_acknowledged_write(
    tmp_path: Path,
) -> None:
    server = ServerProcess(
        tmp_path / "data",
        env={
            "MEMBANK_SERVER__SHUTDOWN_TIMEOUT": "2",
            "MEMBANK_SECURITY__MAX_CONCURRENT_BATCHES_PER_KEY": "16",
        },
    ).start()
    long = " ".join(["a long sentence to keep the embedder busy for a while"] * 40)

    def post(i: int) -> httpx.Response | Exception:
        body = {"memories": [{"user_id": f"s{i}", "content": f"{long} {i} {j}"} for j in range(96)]}
        try:
            return httpx.post(
                f"{server.url}/v1/memories/batch", json=body, headers=AUTH, timeout=120
            )
        except httpx.TransportError as exc:
            return exc

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(post, i) for i in range(6)]
        time.sleep(3.0)
        status = server.stop()
        answers = [f.result() for f in futures]
    responses = [a for a in answers if isinstance(a, httpx.Response)]
    assert responses
    for r in responses:
        assert r.headers["content-type"].startswith("application/json"), r.text[:200]
        assert r.status_code in (201, 503), r.text[:200]
    cut = [r for r in responses if r.status_code == 503]
    assert cut and all(r.json()["error"]["code"] == "shutting_down" for r in cut)
    assert status == 1, "a shutdown that cut requests off exits 1"
    acknowledged = [m for r in responses if r.status_code == 201 for m in r.json()["items"]]
    server.start()
    try:
        with server.client() as http:
            for m in acknowledged:
                got = http.get(f"/v1/memories/{m['id']}", params={"user_id": m["user_id"]})
                assert got.status_code == 200, m["id"]
        assert server.stop() == 0, "a quiet shutdown exits 0"
    finally:
        server.stop()
