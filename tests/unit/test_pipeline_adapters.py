"""The chat client over httpx's MockTransport (no network), the sealed job queue, and the
LLM settings' secrets."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from uuid import uuid4

import httpx
import pytest

from membank_server.config import load_settings, masked, secret_values
from membank_server.domain.errors import ConfigError, ModelOutputInvalid, ModelUnavailable
from membank_server.domain.jobs import Job, JobItem, JobKind, QueueLimits
from membank_server.llm.openai_chat import OpenAIChat
from membank_server.security.crypto import KeyRing, generate_key
from membank_server.security.encrypted_queue import EncryptedJobQueue
from tests.unit.pipeline_fakes import InMemoryJobQueue

KEY = "sk-unit-secret-key-0123456789"


def _answer(content: object, status: int = 200) -> httpx.Response:
    if status != 200:
        return httpx.Response(status, json={"error": {"message": f"bad key Bearer {KEY}"}})
    return httpx.Response(
        200,
        json={
            "choices": [{"message": {"role": "assistant", "content": content}}],
            "usage": {"total_tokens": 42},
        },
    )


async def _ask(handler: httpx.MockTransport, retries: int = 2) -> object:
    chat = OpenAIChat(
        base_url="http://127.0.0.1:9/v1", model="m", api_key=KEY, retries=retries,
        transport=handler,
    )  # fmt: skip
    await chat.start()
    try:
        answer = await chat.complete_json("sys", "user", "membank_facts", {"type": "object"})
        return answer
    finally:
        await chat.aclose()


async def test_a_structured_answer_is_decoded_with_its_tokens() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return _answer(json.dumps({"facts": ["a"]}))

    answer = await _ask(httpx.MockTransport(handle))
    assert answer.data == {"facts": ["a"]} and answer.tokens == 42  # type: ignore[attr-defined]
    body = json.loads(seen[0].content)
    assert body["response_format"]["json_schema"]["name"] == "membank_facts"
    assert body["response_format"]["json_schema"]["strict"] is True
    assert seen[0].headers["Authorization"] == f"Bearer {KEY}"
    assert seen[0].url.path == "/v1/chat/completions"


async def test_5xx_is_retried_then_unavailable_without_the_key() -> None:
    calls = 0

    def handle(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return _answer(None, 503)

    with pytest.raises(ModelUnavailable) as failed:
        await _ask(httpx.MockTransport(handle), retries=1)
    assert calls == 2 and "503" in failed.value.message
    # A chat model's 5xx text may repeat the conversation: only the status is told.
    assert "bad key" not in failed.value.message and KEY not in str(failed.value.__dict__)


async def test_a_refusal_quoting_the_key_is_scrubbed() -> None:
    with pytest.raises(ModelUnavailable) as refused:
        await _ask(httpx.MockTransport(lambda r: _answer(None, 401)))
    assert "401" in refused.value.message and KEY not in str(refused.value.__dict__)
    assert "Bearer ***" in refused.value.message


@pytest.mark.parametrize("content", ["not json {", None])
async def test_an_answer_that_is_not_json_is_model_output_invalid(content: object) -> None:
    with pytest.raises(ModelOutputInvalid):
        await _ask(httpx.MockTransport(lambda r: _answer(content)))


def test_the_model_url_must_be_http() -> None:
    with pytest.raises(ConfigError):
        OpenAIChat(base_url="ftp://example/v1", model="m")
    with pytest.raises(ConfigError, match=r"llm\.base_url"):
        load_settings(environ={"MEMBANK_LLM__BASE_URL": "file:///etc/passwd"})


def test_the_llm_key_is_a_masked_secret() -> None:
    settings = load_settings(
        environ={"MEMBANK_LLM__BASE_URL": "http://127.0.0.1:9/v1", "MEMBANK_LLM__API_KEY": KEY}
    )
    assert masked(settings)["llm"]["api_key"] == "***"
    assert KEY not in json.dumps(masked(settings))
    assert KEY in secret_values(settings)
    assert KEY not in repr(OpenAIChat(base_url="http://127.0.0.1:9/v1", model="m", api_key=KEY))


async def test_payloads_are_sealed_in_the_queue_and_bound_to_their_item() -> None:
    ring = KeyRing.from_settings(keys={"k1": generate_key()}, active="k1", index_key=generate_key())
    inner = InMemoryJobQueue()
    queue = EncryptedJobQueue(inner, ring)
    now = datetime.now(UTC)
    job = Job(uuid4(), JobKind.EMBED, ("u",), now, now, 2)
    items = [JobItem("u", b"my secret text"), JobItem("u", b"another one")]
    await queue.submit(job, items, QueueLimits(10, 10))
    stored = [v[2] for v in inner.items.values()]
    assert all(b"secret" not in p and b"another" not in p for p in stored)
    # A payload moved to another item does not open: that item gets nothing.
    first, second = inner.items[(job.id, 0)], inner.items[(job.id, 1)]
    first[2], second[2] = second[2], first[2]
    claimed = await queue.claim(JobKind.EMBED, 10, 60)
    assert [c.payload for c in claimed] == [b"", b""]
    plain = Job(uuid4(), JobKind.EMBED, ("u",), now, now, 1)
    await inner.submit(plain, [JobItem("u", b"queued before encryption")], QueueLimits(10, 10))
    sealed = Job(uuid4(), JobKind.EMBED, ("u",), now, now, 1)
    await queue.submit(sealed, [JobItem("u", b"fresh")], QueueLimits(10, 10))
    assert [c.payload for c in await queue.claim(JobKind.EMBED, 10, 60)] == [
        b"queued before encryption",
        b"fresh",
    ]
