"""Scheduled backups in a real server: a cron of seconds writes backups and prunes by
retention; a target that cannot be reached calls a local webhook receiver, and the
webhook's token stays out of the server's log. Each round is a Prometheus metric."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import ServerProcess, free_port

__all__: list[str] = []

EVERY_2S = "*/2 * * * * *"


def _until(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    pytest.fail(f"not within {timeout}s: {what}")


def _schedule(http: httpx.Client) -> dict[str, Any]:
    answer = http.get("/v1/admin/backups/schedule")
    assert answer.status_code == 200, answer.text
    status: dict[str, Any] = answer.json()
    return status


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A local webhook receiver: its URL (with a token in the path) and what it got."""
    got: list[dict[str, Any]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append({"path": self.path, **json.loads(body)})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/tok-3f9a1c77e2", got
    server.shutdown()
    server.server_close()


def test_a_schedule_of_seconds_writes_backups_and_prunes_them(tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    server = ServerProcess(
        tmp_path / "data",
        env={
            "MEMBANK_BACKUP__SCHEDULE": EVERY_2S,
            "MEMBANK_BACKUP__TARGET": str(folder),
            "MEMBANK_BACKUP__KEEP_LAST": "2",
            "MEMBANK_BACKUP__KEEP_DAILY": "0",
            "MEMBANK_BACKUP__KEEP_WEEKLY": "0",
            "MEMBANK_BACKUP__KEEP_MONTHLY": "0",
        },
    ).start()
    try:
        with server.client() as http:
            made = http.post(
                "/v1/memories",
                json={"user_id": "sched-u", "content": "kept", "vector": [1.0] + [0.0] * 383},
            )
            assert made.status_code == 201, made.text
            first = _until(
                lambda: (_schedule(http).get("last") or {}).get("backup"), "a first backup"
            )
            assert _schedule(http)["cron"] == EVERY_2S
            _until(
                lambda: _schedule(http)["runs"] >= 3 and _schedule(http)["last"].get("pruned"),
                "a round that pruned",
            )
            status = _schedule(http)
            assert status["failures"] == 0 and status["last"]["outcome"] == "success"
            assert status["last"]["records"] == 1
            metrics = http.get("/metrics").text
            assert 'membank_backups_total{outcome="success"}' in metrics
    finally:
        server.stop()
    left = {p.name for p in folder.iterdir() if (p / "manifest.json").exists()}
    assert first not in left  # pruned: older than the newest two
    assert 2 <= len(left) <= 3  # the server may stop between a round's commit and its prune


def test_a_failing_round_calls_the_webhook(
    tmp_path: Path, receiver: tuple[str, list[dict[str, Any]]]
) -> None:
    url, got = receiver
    server = ServerProcess(
        tmp_path / "data",
        env={
            "MEMBANK_BACKUP__SCHEDULE": EVERY_2S,
            "MEMBANK_BACKUP__TARGET": "s3://nowhere/backups",
            "MEMBANK_BACKUP__S3__ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
            "MEMBANK_BACKUP__S3__ACCESS_KEY": "nobody",
            "MEMBANK_BACKUP__S3__SECRET_KEY": "nothing-at-all",
            "MEMBANK_BACKUP__S3__REGION": "us-east-1",
            "MEMBANK_BACKUP__S3__RETRIES": "0",
            "MEMBANK_BACKUP__S3__CONNECT_TIMEOUT": "1",
            "MEMBANK_BACKUP__WEBHOOK_URL": url,
            "MEMBANK_BACKUP__WEBHOOK_RETRIES": "1",
        },
    ).start()
    try:
        _until(lambda: got, "a call to the webhook")
        with server.client() as http:
            status = _schedule(http)
            metrics = http.get("/metrics").text
    finally:
        server.stop()
    alert = got[0]
    assert alert["path"] == "/hooks/tok-3f9a1c77e2"
    assert alert["event"] == "backup_failed"
    assert alert["code"] == "backup_target_unavailable", alert
    assert alert["target"] == "s3://nowhere/backups"
    assert status["failures"] >= 1 and status["last"]["outcome"] == "failure"
    assert 'membank_backups_total{outcome="failure"}' in metrics
    log = server.log.read_text()
    assert "scheduled backup failed" in log
    assert "tok-3f9a1c77e2" not in log and "nothing-at-all" not in log
