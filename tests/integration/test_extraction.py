"""Fact extraction over HTTP, against a real server and a deterministic chat double."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.llm import ChatDouble
from tests.support.server import AUTH, ServerProcess

LLM_KEY = "sk-test-llm-0123456789-very-secret"


@pytest.fixture(scope="module")
def chat() -> Iterator[ChatDouble]:
    with ChatDouble() as double:
        yield double


@pytest.fixture(scope="module")
def llm_server(
    tmp_path_factory: pytest.TempPathFactory, chat: ChatDouble
) -> Iterator[ServerProcess]:
    root: Path = tmp_path_factory.mktemp("extract")
    env = {
        "MEMBANK_LLM__BASE_URL": chat.url,
        "MEMBANK_LLM__MODEL": "double-1",
        "MEMBANK_LLM__API_KEY": LLM_KEY,
        "MEMBANK_LLM__RETRIES": "0",
        "MEMBANK_LLM__USER_TOKEN_BUDGET": "200000",
    }
    proc = ServerProcess(root / "data", env=env).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def api(llm_server: ServerProcess) -> Iterator[httpx.Client]:
    with llm_server.client() as client:
        yield client


def _extract(api: httpx.Client, user: str, *texts: str, **params: str) -> httpx.Response:
    messages = [{"role": "user", "content": t} for t in texts]
    return api.post(
        "/v1/memories/extract", params=params, json={"user_id": user, "messages": messages}
    )


def _contents(api: httpx.Client, user: str) -> list[str]:
    items = api.get("/v1/memories", params={"user_id": user, "limit": 1000}).json()["items"]
    return sorted(m["content"] for m in items)


def test_without_a_language_model_the_endpoint_answers_400(http: httpx.Client) -> None:
    r = _extract(http, "nollm", "I live in Berlin.")
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "not_configured"
    assert "llm.base_url" in r.json()["error"]["message"]
    assert _extract(http, "nollm", "I live in Berlin.", mode="async").status_code == 400


def test_add_update_none_and_delete_with_reasons_in_history(api: httpx.Client) -> None:
    user = "extract-paths"
    first = _extract(api, user, "My favourite colour is blue. I live in Berlin.")
    assert first.status_code == 200, first.text
    assert [(d["event"], d["fact"]) for d in first.json()["results"]] == [
        ("ADD", "My favourite colour is blue"),
        ("ADD", "I live in Berlin"),
    ]
    colour_id = first.json()["results"][0]["memory_id"]
    second = _extract(api, user, "My favourite colour is green. I live in Berlin.")
    results = second.json()["results"]
    assert [d["event"] for d in results] == ["UPDATE", "NONE"]
    assert results[0]["memory_id"] == colour_id
    assert results[0]["previous"] == "My favourite colour is blue"
    assert _contents(api, user) == ["I live in Berlin", "My favourite colour is green"]
    third = _extract(api, user, "forget my favourite colour")
    assert [d["event"] for d in third.json()["results"]] == ["DELETE"]
    assert _contents(api, user) == ["I live in Berlin"]
    history = api.get(f"/v1/memories/{colour_id}/history", params={"user_id": user}).json()
    notes = [(e["event"], e["metadata"]["membank_extraction"]) for e in history["items"]]
    assert notes == [
        ("ADD", {"event": "ADD", "reason": "a new fact"}),
        ("UPDATE", {"event": "UPDATE", "reason": "a newer value"}),
        ("DELETE", {"event": "DELETE", "reason": "the user retracted my favourite colour"}),
    ]
    berlin = api.get("/v1/memories", params={"user_id": user}).json()["items"][0]
    assert berlin["metadata"] == {}  # the note is the history's, not the memory's


async def _concurrent(url: str, user: str, clients: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=60) as client:

        async def one(i: int) -> httpx.Response:
            text = f"I live in Berlin. My favourite number is {i}. I own pet number {i}."
            body = {"user_id": user, "messages": [{"role": "user", "content": text}]}
            return await client.post("/v1/memories/extract", json=body)

        return await asyncio.gather(*(one(i) for i in range(clients)))


def test_eight_concurrent_extractions_for_one_user_lose_and_duplicate_nothing(
    api: httpx.Client, llm_server: ServerProcess
) -> None:
    user = "extract-race"
    answers = asyncio.run(_concurrent(llm_server.url, user, 8))
    assert [r.status_code for r in answers] == [200] * 8
    contents = _contents(api, user)
    assert contents.count("I live in Berlin") == 1
    assert sorted(c for c in contents if c.startswith("I own pet")) == sorted(
        f"I own pet number {i}" for i in range(8)
    )
    (number,) = [c for c in contents if c.startswith("My favourite number")]
    assert len(contents) == 10
    events = [d["event"] for r in answers for d in r.json()["results"]]
    assert events.count("ADD") == 10 and events.count("UPDATE") == 7 and events.count("NONE") == 7
    items = api.get("/v1/memories", params={"user_id": user, "limit": 1000}).json()["items"]
    (favourite,) = [m for m in items if m["content"] == number]
    history = api.get(f"/v1/memories/{favourite['id']}/history", params={"user_id": user})
    assert [e["event"] for e in history.json()["items"]] == ["ADD"] + ["UPDATE"] * 7


def test_malformed_model_output_is_a_clear_error_and_writes_nothing(api: httpx.Client) -> None:
    user = "extract-malformed"
    r = _extract(api, user, "I like tea. MALFORMED")
    assert r.status_code == 502
    assert r.json()["error"]["code"] == "model_output_invalid"
    shapeless = _extract(api, user, "I like tea. SHAPELESS")
    assert shapeless.status_code == 502 and "facts" in shapeless.json()["error"]["message"]
    whole = _extract(api, user, "I like tea. MALFORMED DECISIONS")
    assert whole.status_code == 502
    assert _contents(api, user) == []
    mixed = _extract(api, user, "I like jazz. BAD decision here")
    assert mixed.status_code == 200
    bad, good = sorted(mixed.json()["results"], key=lambda d: d["event"] is not None)
    assert bad["event"] is None and bad["error"]["code"] == "model_output_invalid"
    assert bad["fact"] == "BAD decision here"
    assert good["event"] == "ADD"
    assert _contents(api, user) == ["I like jazz"]


def test_async_extraction_is_a_job(api: httpx.Client) -> None:
    user = "extract-async"
    r = _extract(api, user, "I play the cello. My dog is Rex.", mode="async")
    assert r.status_code == 202
    job = _wait(api, r.headers["Location"])
    assert job["status"] == "done" and job["kind"] == "extract"
    (item,) = job["items"]
    assert [d["event"] for d in item["result"]["decisions"]] == ["ADD", "ADD"]
    assert _contents(api, user) == ["I play the cello", "My dog is Rex"]
    other = httpx.Client(base_url=str(api.base_url), headers={"Authorization": "Bearer nope"})
    assert other.get(r.headers["Location"]).status_code == 401
    other.close()


def test_a_spent_token_budget_is_refused(api: httpx.Client) -> None:
    user = "extract-budget"
    assert _extract(api, user, "EXPENSIVE words").status_code == 200
    refused = _extract(api, user, "I like tea.")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "quota_exceeded"


def test_the_model_key_stays_secret_when_the_model_refuses(
    api: httpx.Client, chat: ChatDouble, llm_server: ServerProcess
) -> None:
    chat.reject = True
    try:
        r = _extract(api, "extract-secret", "I like tea.")
    finally:
        chat.reject = False
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "model_unavailable"
    assert "HTTP 401" in r.json()["error"]["message"]
    assert chat.authorization[-1] == f"Bearer {LLM_KEY}"
    assert LLM_KEY not in r.text
    assert LLM_KEY not in llm_server.log.read_text()
    assert LLM_KEY not in api.get("/metrics").text


def _wait(api: httpx.Client, location: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = api.get(location).json()
        if job["status"] in ("done", "partial", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {location} did not finish: {job}")
