"""Reading a Prometheus server: a small fake one on 127.0.0.1 answering ``query_range``.

It answers in Prometheus's documented shape (``{"status": "success", "data":
{"resultType": "matrix", "result": [{"metric": {...}, "values": [[t, "v"], ...]}]}}``)
from series made here, records the queries it was sent, and has no series for
the figures membank does not export yet.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from typer.testing import CliRunner

from membank_cli.app import app
from membank_cli.capacity.prometheus import QUERIES, PrometheusHistory
from membank_server.domain.errors import InvalidInput, Unavailable
from tests.support.loopback import serve_on_loopback

START = 1_780_000_000.0
HOURS = 72
#: metric name in the query -> value at hour h
SERIES = {
    "membank_memories": lambda h: 10_000 + 100 * h,
    "membank_process_resident_memory_bytes": lambda h: 400e6 + 1e5 * h,
    "membank_requests_total": lambda h: 5 + h % 24 / 4,
    "membank_request_duration_seconds_bucket": lambda h: 12.5,
    "membank_process_cpu_seconds_total": lambda h: 20 + h % 24,
    "membank_requests_error_total": lambda h: 0.01,
    "membank_users": lambda h: 500 + h,
    "membank_disk_bytes": lambda h: 200e6 + 2e5 * h,
}


class _Prometheus(BaseHTTPRequestHandler):
    queries: list[dict[str, list[str]]] = []
    refuse = False
    missing: frozenset[str] = frozenset()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        params = parse_qs(url.query)
        type(self).queries.append(params)
        if url.path != "/api/v1/query_range":
            return self._send(404, {"status": "error", "error": "not found"})
        if self.refuse:
            return self._send(
                400, {"status": "error", "errorType": "bad_data", "error": "parse error"}
            )
        query = params["query"][0]
        name = next(
            (n for n in SERIES if n + "{" in query or n + "[" in query or n + ")" in query), None
        )
        if name in self.missing:
            name = None
        result = []
        if name:
            step = int(params["step"][0].rstrip("s"))
            values = [[START + h * step, str(SERIES[name](h))] for h in range(HOURS)]
            result = [{"metric": {"job": "membank"}, "values": values}]
        self._send(200, {"status": "success", "data": {"resultType": "matrix", "result": result}})

    def _send(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def prometheus() -> Iterator[str]:
    _Prometheus.queries = []
    _Prometheus.refuse = False
    _Prometheus.missing = frozenset()
    with serve_on_loopback(_Prometheus) as url:
        yield url


def test_samples_come_from_query_range(prometheus: str) -> None:
    _Prometheus.missing = frozenset({"membank_users", "membank_disk_bytes"})
    source = PrometheusHistory(prometheus, selector='job="membank"', dimension=384)
    samples = asyncio.run(source.samples(None))
    assert len(samples) == HOURS
    assert [s.memories for s in samples[:3]] == [10_000, 10_100, 10_200]
    assert samples[-1].rss_bytes == int(400e6 + 1e5 * (HOURS - 1))
    assert samples[5].rps == pytest.approx(5 + 5 / 4) and samples[5].cpu_percent == 25
    assert samples[0].p95_ms == 12.5 and samples[0].backend == "edge"
    assert samples[1].at.timestamp() - samples[0].at.timestamp() == 3600
    # One query a field, each with the selector, over the default step of an hour.
    sent = [q["query"][0] for q in _Prometheus.queries]
    assert len(sent) == len(QUERIES)
    assert all('{job="membank"}' in q for q in sent)
    assert all(q["step"] == ["3600s"] for q in _Prometheus.queries)
    # Before a server's first census there are no users or disk series: read as 0, and said.
    assert samples[0].users == 0 and samples[0].disk_bytes == 0
    assert source.notes and "disk_bytes" in source.notes[0] and "users" in source.notes[0]


def test_refusals_and_absences_are_one_line(prometheus: str) -> None:
    _Prometheus.refuse = True
    with pytest.raises(InvalidInput, match="Prometheus refused"):
        asyncio.run(PrometheusHistory(prometheus).samples(None))
    _Prometheus.refuse = False
    with pytest.raises(InvalidInput, match="no membank_memories series"):
        asyncio.run(_no_memories(prometheus))
    with pytest.raises(Unavailable, match="cannot reach Prometheus"):
        asyncio.run(PrometheusHistory("http://127.0.0.1:9").samples(None))


async def _no_memories(url: str) -> None:
    saved = SERIES.pop("membank_memories")
    try:
        await PrometheusHistory(url).samples(None)
    finally:
        SERIES["membank_memories"] = saved


def test_capacity_plan_reads_prometheus(prometheus: str, tmp_path: Path) -> None:
    chart = tmp_path / "plan.png"
    result = CliRunner().invoke(
        app,
        ["capacity", "plan", "--prometheus", prometheus, "--prometheus-selector", 'job="membank"',
         "--format", "json", "--chart", str(chart)],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["source"] == f"Prometheus at {prometheus}" and plan["simulated"] is False
    assert "no Prometheus series" not in result.stderr  # users and disk are exported now
    assert plan["forecasts"]["memories"]["growth_pct_per_day"] > 0
    assert plan["recommendation"]["instance"] and chart.stat().st_size > 10_000
    sent = {q["query"][0] for q in _Prometheus.queries}
    assert 'max(membank_users{job="membank"})' in sent
    assert 'sum(membank_disk_bytes{job="membank"})' in sent
