"""History sources: the SQLite file the sampler writes, and the server's history endpoint."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from membank_cli.capacity.remote import HISTORY_PATH, ServerHistory
from membank_cli.capacity.simulate import SimulatedHistory, Simulation
from membank_cli.capacity.sqlite import SqliteHistory, write_samples
from membank_server.domain.capacity import SAMPLE_FIELDS, Sample
from membank_server.domain.errors import ConfigError, InvalidInput

END = datetime(2026, 6, 1, tzinfo=UTC)


def _samples(days: int = 3) -> list[Sample]:
    return SimulatedHistory(Simulation(days=days, end=END)).generate()


def test_sqlite_history_round_trips_and_filters_by_since(tmp_path: Path) -> None:
    samples = _samples()
    path = tmp_path / "history.sqlite"
    write_samples(path, samples)
    source = SqliteHistory(path)
    assert asyncio.run(source.samples(None)) == samples
    since = END - timedelta(hours=5)
    assert asyncio.run(source.samples(since)) == [s for s in samples if s.at >= since]


def test_sqlite_history_failures_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        asyncio.run(SqliteHistory(tmp_path / "nope.sqlite").samples(None))
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(ConfigError, match="not a membank history"):
        asyncio.run(SqliteHistory(junk).samples(None))


def _as_json(s: Sample) -> dict[str, object]:
    return {f: (s.at.isoformat() if f == "at" else getattr(s, f)) for f in SAMPLE_FIELDS}


def test_server_history_reads_the_documented_shape() -> None:
    samples = _samples(1)
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"samples": [_as_json(s) for s in samples]})

    source = ServerHistory("http://127.0.0.1:9", "mbk_key", httpx.MockTransport(answer))
    got = asyncio.run(source.samples(END - timedelta(days=1)))
    assert got == samples
    assert seen[0].url.path == HISTORY_PATH
    assert datetime.fromisoformat(seen[0].url.params["since"]) == END - timedelta(days=1)
    assert seen[0].headers["authorization"] == "Bearer mbk_key"


@pytest.mark.parametrize(
    ("status", "body", "error", "needle"),
    [
        (404, {"error": {"message": "not found"}}, ConfigError, "--history FILE"),
        (403, {"error": {"message": "forbidden"}}, ConfigError, "admin key"),
        (200, {"items": []}, InvalidInput, "samples"),
        (200, {"samples": [{"at": "2026-06-01T00:00:00"}]}, InvalidInput, "malformed"),
    ],
)
def test_server_history_failures_name_the_way_out(
    status: int, body: dict[str, object], error: type[Exception], needle: str
) -> None:
    transport = httpx.MockTransport(lambda r: httpx.Response(status, content=json.dumps(body)))
    with pytest.raises(error, match=needle):
        asyncio.run(ServerHistory("http://127.0.0.1:9", None, transport).samples(None))
