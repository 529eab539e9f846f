"""Metrics with two workers: every worker's counters added up, whichever answers /metrics.

``membank serve --workers 2`` on pgvector (a store several processes may share):
prometheus-client's multiprocess mode, one folder the supervisor made. Requests go
on fresh connections, so both workers serve some; each scrape, from whichever
worker, must count all of them, and carry the metric names and labels operators
and ``membank capacity plan --prometheus`` rely on.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest

from tests.support.server import AUTH, ServerProcess

WRITES, MISSES, SEARCHES = 24, 6, 10


def _value(metrics: str, pattern: str) -> float:
    """The sum of the samples whose line matches ``pattern`` (a regex of name and labels)."""
    found = [float(m.group(1)) for m in re.finditer(rf"^{pattern}\S* (\S+)$", metrics, re.M)]
    assert found, f"no sample matches {pattern}"
    return sum(found)


@pytest.fixture
def two_workers(tmp_path: Path, pg_dsn: str) -> Iterator[ServerProcess]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    server = ServerProcess(
        tmp_path / "data",
        env={
            "MEMBANK_SERVER__WORKERS": "2",
            "MEMBANK_STORAGE__BACKEND": "pgvector",
            "MEMBANK_STORAGE__POSTGRES__DSN": pg_dsn,
            "MEMBANK_STORAGE__POSTGRES__SCHEMA": schema,
            "MEMBANK_OBSERVE__SAMPLE_SECONDS": "1",
            "MEMBANK_OBSERVE__CENSUS_SECONDS": "1",
        },
    ).start(timeout=120)
    try:
        _both_ready(server)
        yield server
    finally:
        server.stop()

        async def drop() -> None:
            conn = await asyncpg.connect(pg_dsn)
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            await conn.close()

        import asyncio

        asyncio.run(drop())


def _both_ready(server: ServerProcess) -> None:
    """/ready from one worker says nothing of the other: ten in a row on fresh connections."""
    deadline, streak = time.monotonic() + 60, 0
    while streak < 10 and time.monotonic() < deadline:
        streak = streak + 1 if _fresh(server, "GET", "/ready").status_code == 200 else 0
        time.sleep(0.05 if streak else 0.3)
    assert streak >= 10, "the workers did not both get ready"


def _fresh(server: ServerProcess, method: str, path: str, **kw: object) -> httpx.Response:
    # A connection of its own: the kernel hands it to either worker.
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as http:
        return http.request(method, path, **kw)  # type: ignore[arg-type]


def test_two_workers_count_every_request_and_carry_the_metric_names(
    two_workers: ServerProcess,
) -> None:
    s = two_workers
    for i in range(WRITES):
        user = f"user-{i % 3}"
        r = _fresh(s, "POST", "/v1/memories", json={"user_id": user, "content": f"likes {i}"})
        assert r.status_code == 201, r.text
    for _ in range(MISSES):
        r = _fresh(s, "GET", f"/v1/memories/{uuid.uuid4()}", params={"user_id": "user-1"})
        assert r.status_code == 404
    for i in range(SEARCHES):
        r = _fresh(s, "POST", "/v1/search", json={"user_id": "user-0", "query": f"q {i % 4}"})
        assert r.status_code == 200
    time.sleep(2.5)  # a census and samples
    scrapes = [_fresh(s, "GET", "/metrics").text for _ in range(6)]
    for metrics in scrapes:
        post = 'membank_requests_total{app_name="membank",method="POST",path="/v1/memories"'
        assert _value(metrics, re.escape(post) + r',status_code="201"\}') == WRITES
        misses = re.escape('membank_requests_total{app_name="membank",method="GET"')
        assert _value(metrics, misses + r'.*status_code="404"') == MISSES
        assert _value(metrics, r"membank_request_duration_seconds_count\{.*/v1/search") == SEARCHES
        assert _value(metrics, r'membank_store_operation_seconds_count\{operation="upsert"') == (
            WRITES
        )
        assert _value(metrics, r"membank_embedding_seconds_count") >= 1
        assert _value(metrics, r'membank_cache_lookups_total\{level="l1"') >= SEARCHES
        assert _value(metrics, r'membank_cache_level_seconds_count\{level="l1"') >= SEARCHES
        assert (
            _value(metrics, r"membank_processes") >= 3
        )  # the supervisor, two workers (and helpers)
        assert _value(metrics, r"membank_process_cpu_seconds_total") > 0
        assert _value(metrics, r"membank_process_resident_memory_bytes") > 200 * 2**20
        assert _value(metrics, r'membank_pool_connections\{pool="store",state="max"\}') == 20
        assert _value(metrics, r"membank_users") == 3
        assert _value(metrics, r"membank_disk_bytes") > 0
        assert _value(metrics, r"membank_tenant_memories") == WRITES
        assert _value(metrics, r"membank_memories") == WRITES
        # The ingestion pipeline: one pool a kind in each worker, at its minimum (1),
        # added up; the shared queue's depth and limit are not.
        for kind in ("embed_store", "extract", "reindex", "delete_user"):
            assert _value(metrics, rf'membank_job_workers\{{kind="{kind}"\}}') == 2
            assert _value(metrics, rf'membank_job_queue_depth\{{kind="{kind}"\}}') == 0
        assert _value(metrics, r"membank_job_queue_capacity") == 200_000
        assert "user-0" not in metrics
    with s.client() as http:
        sli = http.get("/v1/admin/sli", params={"window": "1h"}).json()
        samples = http.get("/v1/admin/history").json()["samples"]
        totals = http.get("/v1/admin/totals").json()
    assert (totals["job_workers"], totals["queue_depth"], totals["queue_capacity"]) == (
        8,
        0,
        200_000,
    )
    # The SLIs and the history (PostgreSQL here) are the whole server's too.
    # Scrapes and probes are not traffic.
    assert (sli["requests"], sli["client_errors"]) == (WRITES + MISSES + SEARCHES, MISSES)
    assert samples and samples[-1]["memories"] == WRITES and samples[-1]["backend"] == "pgvector"
    assert (samples[-1]["job_workers"], samples[-1]["queue_depth"]) == (8, 0)
    assert len({x["at"] for x in samples}) == len(samples)  # one sample a moment, not one a worker
