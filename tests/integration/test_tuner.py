"""``membank tune`` against a running server with a deliberately bad setting.

The server starts with an in-process cache of two entries, and traffic (searches
over 30 questions, two clients) runs through every step. The tuner must see the
L1 hit ratio below 0.8, propose a bigger cache inside its bounds, apply it, see
p99 improve, and keep it. Asked to try a two-entry cache again, it must see p99
get worse and put the good value back. Both sessions are in the journal.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from membank_cli.app import app
from tests.support.server import ADMIN_KEY, ServerProcess

USER = "tuned"
CONFIG = """
[cache]
l1_max_entries = 2

[observe.tunables]
"cache.l1_max_entries" = [2, 100000, 1000]
"""


@pytest.fixture
def tiny_l1(tmp_path: Path) -> Iterator[ServerProcess]:
    config = tmp_path / "membank.toml"
    config.write_text(CONFIG)
    server = ServerProcess(tmp_path / "data", env={"MEMBANK_CONFIG": str(config)}).start()
    stop = threading.Event()

    def traffic() -> None:
        with server.client() as http:
            i = 0
            while not stop.is_set():
                body = {"user_id": USER, "query": f"what does the user like, question {i % 30}"}
                http.post("/v1/search", json=body)
                i += 1

    try:
        with server.client() as http:
            for i in range(40):
                http.post("/v1/memories", json={"user_id": USER, "content": f"likes thing {i}"})
        threads = [threading.Thread(target=traffic, daemon=True) for _ in range(2)]
        for t in threads:
            t.start()
        yield server
    finally:
        stop.set()
        server.stop()


def _tune(server: ServerProcess, *args: str) -> str:
    result = CliRunner().invoke(
        app,
        ["tune", "--apply", "--window", "4", "--stability", "2", *args,
         "--url", server.url, "--api-key", ADMIN_KEY],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    return " ".join(result.stdout.split())


def _l1_entries(http: httpx.Client) -> float:
    tunables = {t["name"]: t for t in http.get("/v1/admin/tunables").json()}
    return float(tunables["cache.l1_max_entries"]["value"])


def _decisions(http: httpx.Client, session: str) -> list[dict[str, Any]]:
    events = http.get("/v1/admin/tuning").json()
    return [e for e in events if e["session"] == session and e["action"] != "applied"]


def test_the_tuner_fixes_a_tiny_cache_and_rolls_back_a_bad_change(tiny_l1: ServerProcess) -> None:
    out = _tune(tiny_l1)
    assert "cache l1 hit ratio" in out and "kept" in out
    with tiny_l1.client() as http:
        assert _l1_entries(http) == 1002  # 2 doubled, one step, or the minimum: the largest
        journal = http.get("/v1/admin/tuning").json()
        first = journal[0]["session"]
        steps = _decisions(http, first)
    assert [e["action"] for e in steps][:3] == ["session", "proposed", "proposed"]
    kept = next(e for e in steps if e["action"] == "kept")
    assert kept["tunable"] == "cache.l1_max_entries" and kept["old"] == 2 and kept["new"] == 1002
    assert kept["after"] < kept["before"]  # p99 went down: why it was kept
    print(f"kept {kept['tunable']} {kept['old']:g} -> {kept['new']:g}: p99 {kept['before']:.1f}"
          f" -> {kept['after']:.1f} ms")  # fmt: skip
    assert steps[-1]["action"] == "ended"
    # The server journals what it applied, by session.
    applied = [e for e in journal if e["action"] == "applied" and e["session"] == first]
    assert applied[0]["tunable"] == "cache.l1_max_entries" and applied[0]["new"] == 1002

    out = _tune(tiny_l1, "--set", "cache.l1_max_entries=2")
    assert "rolled_back" in out
    with tiny_l1.client() as http:
        assert _l1_entries(http) == 1002  # put back
        second = http.get("/v1/admin/tuning").json()[-1]["session"]
        rolled = [e for e in _decisions(http, second) if e["action"] == "rolled_back"]
    assert second != first and len(rolled) == 1
    assert rolled[0]["new"] == 2 and rolled[0]["after"] > rolled[0]["before"]
    print(f"rolled back {rolled[0]['tunable']} -> 2: p99 {rolled[0]['before']:.1f}"
          f" -> {rolled[0]['after']:.1f} ms")  # fmt: skip

    args = ["tune", "history", "--url", tiny_l1.url, "--api-key", ADMIN_KEY]
    table = CliRunner().invoke(app, args)
    assert table.exit_code == 0, table.stderr
    assert "tuning journal" in table.stdout and "rolled_back" in table.stdout
    listed = json.loads(CliRunner().invoke(app, [*args, "--json"]).stdout)
    assert {e["session"] for e in listed} == {first, second}


def test_a_change_that_takes_a_restart_is_refused_live(tiny_l1: ServerProcess) -> None:
    with tiny_l1.client() as http:
        refused = http.put("/v1/admin/tunables/embedder.batch_size", json={"value": 64})
        out_of_bounds = http.put("/v1/admin/tunables/search.hnsw_ef", json={"value": 5000})
        unknown = http.put("/v1/admin/tunables/server.colour", json={"value": 1})
    assert refused.status_code == 409 and "restart" in refused.json()["error"]["message"]
    # A valid number this tunable's configured bounds refuse: a conflict with the settings.
    assert out_of_bounds.status_code == 409 and "within" in out_of_bounds.json()["error"]["message"]
    assert unknown.status_code == 404


def test_a_job_pool_grows_live(tiny_l1: ServerProcess) -> None:
    with tiny_l1.client() as http:
        tunables = {t["name"]: t for t in http.get("/v1/admin/tunables").json()}
        pool = tunables["jobs.embed_store.max"]
        assert pool["live"] and pool["value"] == 8  # jobs.embed_store.max's default
        grown = http.put("/v1/admin/tunables/jobs.embed_store.max", json={"value": 12})
        assert grown.status_code == 200, grown.text
        tunables = {t["name"]: t for t in http.get("/v1/admin/tunables").json()}
    assert tunables["jobs.embed_store.max"]["value"] == 12
