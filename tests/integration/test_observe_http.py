"""The server about itself over HTTP: SLIs, history, census, metrics that hold no user data.

A real server on the embedded store, sampling every second (``observe.sample_seconds``)
and counting its tenants every second (``observe.census_seconds``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from membank_cli.app import app
from membank_cli.capacity.simulate import SimulatedHistory, Simulation
from membank_cli.capacity.sqlite import write_samples
from tests.support.server import ADMIN_KEY, ServerProcess

FAST = {"MEMBANK_OBSERVE__SAMPLE_SECONDS": "1", "MEMBANK_OBSERVE__CENSUS_SECONDS": "1"}
SECRET_CONTENT = "my bank pin is 4711-unforgettable"
USER = "alice@example.com"


def _mixed(http: httpx.Client, ok: int, missing: int, user: str) -> None:
    for i in range(ok):
        r = http.post("/v1/memories", json={"user_id": user, "content": f"fact {user} {i}"})
        assert r.status_code == 201, r.text
    for _ in range(missing):
        r = http.get("/v1/memories/00000000-0000-4000-8000-000000000000", params={"user_id": user})
        assert r.status_code == 404


def test_slis_count_every_request_once_across_samples(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", env=FAST).start()
    try:
        started = time.monotonic()
        with server.client() as http:
            _mixed(http, 20, 5, "u-a")
            time.sleep(2.5)  # two samples or more: these requests are in the history now
            _mixed(http, 10, 5, "u-b")  # these are not sampled yet: the live window
            sli = http.get("/v1/admin/sli", params={"window": "1h"}).json()
        elapsed = time.monotonic() - started
    finally:
        server.stop()
    # By hand: 40 requests (probes and /metrics are not traffic), 10 answered 404, none 5xx.
    assert (sli["requests"], sli["client_errors"], sli["server_errors"]) == (40, 10, 0)
    assert sli["availability"] == 1.0 and sli["error_rate"] == pytest.approx(10 / 40)
    assert sli["error_budget"] == 1.0
    assert 0 < sli["window_seconds"] <= elapsed + 1
    assert sli["rps"] == pytest.approx(40 / sli["window_seconds"])
    assert 0 < sli["p95_ms"] <= sli["p99_ms"]
    assert sli["objectives"] == {
        "availability": 0.999, "error_rate": 0.001, "p95_ms": 50.0, "p99_ms": 100.0,
        "min_rps": 1000.0,
    }  # fmt: skip
    assert sli["met"]["error_rate"] is False and sli["met"]["availability"] is True


@pytest.fixture(scope="module")
def sampled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with 30 days of generated history before its own samples."""
    data = tmp_path_factory.mktemp("observe") / "data"
    data.mkdir()
    end = datetime.now(UTC) - timedelta(hours=1)
    write_samples(
        data / "metrics-history.sqlite", SimulatedHistory(Simulation(days=30, end=end)).generate()
    )
    server = ServerProcess(data, env=FAST).start()
    with server.client() as http:
        http.post("/v1/memories", json={"user_id": USER, "content": SECRET_CONTENT})
        _mixed(http, 4, 1, "bob")
    time.sleep(2.5)
    yield server
    server.stop()


def test_history_has_the_servers_own_samples_after_the_seeded_ones(sampled: ServerProcess) -> None:
    with sampled.client() as http:
        samples = http.get("/v1/admin/history").json()["samples"]
        recent = http.get(
            "/v1/admin/history", params={"since": (datetime.now(UTC) - timedelta(minutes=5))}
        ).json()["samples"]
        bad_since = http.get("/v1/admin/history", params={"since": "1700000000"})
        bad_window = http.get("/v1/admin/sli", params={"window": "an hour"})
        long_window = http.get("/v1/admin/sli", params={"window": "9999999s"})
    assert len(samples) > 30 * 24 and samples == sorted(samples, key=lambda s: s["at"])
    own = recent[-1]
    assert own["memories"] == 5 and own["users"] == 2 and own["backend"] == "edge"
    assert own["disk_bytes"] > 0 and own["rss_bytes"] > 100 * 2**20 and own["dimension"] == 384
    assert datetime.fromisoformat(own["at"]) > datetime.now(UTC) - timedelta(minutes=1)
    assert bad_since.status_code == 422 and "RFC 3339" in bad_since.json()["error"]["message"]
    assert bad_window.status_code == 422 and "window" in bad_window.json()["error"]["message"]
    # Longer than the 90 days the SLIs read at most: that much, and it says what it covered.
    assert long_window.status_code == 200
    assert 0 < long_window.json()["window_seconds"] <= 90 * 86_400


def test_only_an_admin_reads_the_servers_figures(sampled: ServerProcess) -> None:
    with sampled.client() as admin:
        key = admin.post(
            "/v1/admin/keys", json={"name": "reader", "role": "user", "user_id": "bob"}
        ).json()["secret"]
    with sampled.client(key) as user, sampled.client(None) as nobody:
        for path in ("/v1/admin/history", "/v1/admin/sli", "/v1/admin/tunables"):
            assert user.get(path).status_code == 403
            assert nobody.get(path).status_code == 401


def test_metrics_and_logs_hold_no_user_data(sampled: ServerProcess) -> None:
    with sampled.client() as http:
        metrics = http.get("/metrics").text
        tenants = http.get("/v1/admin/tenants").json()
    for needle in (SECRET_CONTENT, USER, "alice", "bob", ADMIN_KEY):
        assert needle not in metrics
        assert needle not in sampled.log.read_text()
    # The top tenants by pseudonym; the operator's mapping is the admin endpoint.
    names = {t["user_id"]: t["tenant"] for t in tenants}
    assert set(names) == {USER, "bob"}
    assert f'membank_tenant_memories{{tenant="{names["bob"]}"}} 4.0' in metrics
    assert "membank_users 2.0" in metrics and "membank_disk_bytes " in metrics
    for name in (
        'membank_requests_total{app_name="membank",method="POST",path="/v1/memories"',
        'membank_store_operation_seconds_count{operation="upsert",outcome="ok"}',
        "membank_embedding_seconds_count",
        "membank_process_cpu_seconds_total",
        "membank_process_resident_memory_bytes",
        'membank_open_connections{side="inbound"}',
        'membank_cache_l1_size{what="entries"}',
    ):
        assert name in metrics, name


def test_capacity_plan_reads_the_running_servers_history(sampled: ServerProcess) -> None:
    result = CliRunner().invoke(
        app,
        ["capacity", "plan", "--url", sampled.url, "--api-key", ADMIN_KEY, "--format", "json"],
    )
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["source"] == f"server {sampled.url}" and plan["simulated"] is False
    assert plan["forecasts"]["memories"]["method"] in ("holt-winters", "linear")
    assert plan["recommendation"]["instance"]


def test_membank_sli_shows_the_objectives_and_the_budget(sampled: ServerProcess) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["sli", "--url", sampled.url, "--api-key", ADMIN_KEY])
    assert result.exit_code == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "availability" in text and ">= 99.900%" in text and "error budget" in text
    checked = runner.invoke(
        app, ["sli", "--url", sampled.url, "--api-key", ADMIN_KEY, "--check", "--json"]
    )
    assert checked.exit_code == 1  # a few requests a second break the throughput objective
    assert json.loads(checked.stdout)["met"]["rps"] is False
