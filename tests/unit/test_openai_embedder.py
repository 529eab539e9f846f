"""OpenAIEmbedder against a fake provider behind ``httpx.MockTransport``."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import httpx
import pytest
import stamina

from membank_server.domain.errors import ConfigError, EmbedderUnavailable, InvalidInput
from membank_server.embeddings import OpenAIEmbedder

__all__: list[str] = []

_BASE_URL = "https://embed.example.test/v1"
_ENDPOINT = f"{_BASE_URL}/embeddings"
_KEY = "sk-test-7f3a9c1e5b2d"
_DIM = 4


def _vector(text: str) -> list[float]:
    """A distinct, unnormalised vector per text: [n, 2, 0, 1] for a text ending in n."""
    return [float(text.rsplit(" ", 1)[-1]), 2.0, 0.0, 1.0]


def _unit(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector]


def _assert_vectors_of(vectors: list[list[float]], texts: list[str]) -> None:
    assert len(vectors) == len(texts)
    for vector, text in zip(vectors, texts, strict=True):
        assert vector == pytest.approx(_unit(_vector(text)))


class _FakeProvider:
    """Serves /embeddings; answers from ``script`` first (status or exception), then 200s."""

    def __init__(self, *, dimension: int = _DIM, reverse: bool = False) -> None:
        self.requests: list[httpx.Request] = []
        self.script: list[int | Exception | httpx.Response] = []
        self._dimension = dimension
        self._reverse = reverse

    def bodies(self) -> list[dict[str, object]]:
        return [json.loads(request.content) for request in self.requests]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.script:
            step = self.script.pop(0)
            if isinstance(step, Exception):
                raise step
            if isinstance(step, httpx.Response):
                return step
            return httpx.Response(step, json={"error": {"message": f"status {step}"}})
        texts = json.loads(request.content)["input"]
        data = [
            {"object": "embedding", "index": i, "embedding": _vector(t)[: self._dimension]}
            for i, t in enumerate(texts)
        ]
        if self._reverse:
            data.reverse()
        return httpx.Response(200, json={"object": "list", "data": data, "model": "m"})


@pytest.fixture(autouse=True)
def _no_backoff() -> Iterator[None]:
    # Backoff off, attempts as configured by the embedder (capped).
    with stamina.set_testing(True, attempts=20, cap=True):
        yield


@pytest.fixture
def provider() -> _FakeProvider:
    return _FakeProvider()


_Factory = Callable[..., Awaitable[OpenAIEmbedder]]


@pytest.fixture
async def make(provider: _FakeProvider) -> AsyncIterator[_Factory]:
    opened: list[OpenAIEmbedder] = []

    async def factory(**overrides: object) -> OpenAIEmbedder:
        """A started embedder against the fake provider, closed after the test."""
        params: dict[str, object] = {
            "base_url": _BASE_URL,
            "model": "text-embedding-test",
            "dimensions": _DIM,
            "api_key": _KEY,
            "transport": httpx.MockTransport(provider),
        }
        params.update(overrides)
        embedder = OpenAIEmbedder(**params)  # type: ignore[arg-type]
        opened.append(embedder)
        await embedder.start()
        return embedder

    yield factory
    for embedder in opened:
        await embedder.aclose()


async def test_vectors_follow_the_response_index_not_its_order(make: _Factory) -> None:
    provider = _FakeProvider(reverse=True)
    embedder = await make(transport=httpx.MockTransport(provider))
    texts = ["a 1", "b 5", "c 9"]

    vectors = await embedder.embed(texts)

    _assert_vectors_of(vectors, texts)


async def test_vectors_are_l2_normalised(make: _Factory) -> None:
    embedder = await make()

    (vector,) = await embedder.embed(["x 3"])

    assert math.sqrt(sum(x * x for x in vector)) == pytest.approx(1.0)
    assert vector == pytest.approx(_unit([3.0, 2.0, 0.0, 1.0]))


async def test_large_inputs_are_split_into_batches(make: _Factory, provider: _FakeProvider) -> None:
    embedder = await make(batch_size=2)
    texts = [f"t {n}" for n in range(5)]

    vectors = await embedder.embed(texts)

    assert [body["input"] for body in provider.bodies()] == [texts[0:2], texts[2:4], texts[4:]]
    _assert_vectors_of(vectors, texts)


async def test_request_shape_and_bearer_auth(make: _Factory, provider: _FakeProvider) -> None:
    embedder = await make(send_dimensions=True)

    await embedder.embed(["q 1"])

    (request,) = provider.requests
    assert request.method == "POST"
    assert str(request.url) == _ENDPOINT
    assert request.headers["Authorization"] == f"Bearer {_KEY}"
    assert provider.bodies() == [
        {"model": "text-embedding-test", "input": ["q 1"], "dimensions": 4}
    ]


async def test_no_key_means_no_authorization_header(
    make: _Factory, provider: _FakeProvider
) -> None:
    embedder = await make(api_key=None)

    await embedder.embed(["q 1"])

    assert "Authorization" not in provider.requests[0].headers
    assert "dimensions" not in provider.bodies()[0]


@pytest.mark.parametrize("status", [401, 503])
async def test_the_key_never_appears_in_errors(
    make: _Factory, provider: _FakeProvider, status: int
) -> None:
    echo = {"error": {"message": f"Incorrect API key provided: {_KEY}. Check it."}}
    provider.script = [httpx.Response(status, json=echo) for _ in range(4)]
    embedder = await make()

    with pytest.raises(EmbedderUnavailable) as caught:
        await embedder.embed(["q 1"])

    error = caught.value
    assert _KEY not in str(error)
    assert _KEY not in repr(error.details)
    assert str(status) in str(error)
    assert _ENDPOINT in str(error)


async def test_retries_a_503_then_succeeds(make: _Factory, provider: _FakeProvider) -> None:
    provider.script = [503]
    embedder = await make()

    vectors = await embedder.embed(["q 2"])

    assert len(provider.requests) == 2
    _assert_vectors_of(vectors, ["q 2"])


@pytest.mark.parametrize(
    "failure",
    [429, 500, 502, httpx.ConnectError("refused"), httpx.ReadTimeout("slow")],
    ids=["429", "500", "502", "connect", "timeout"],
)
async def test_retryable_failures_are_retried(
    make: _Factory, provider: _FakeProvider, failure: int | Exception
) -> None:
    provider.script = [failure, failure]
    embedder = await make(retries=3)

    _assert_vectors_of(await embedder.embed(["q 1"]), ["q 1"])
    assert len(provider.requests) == 3


@pytest.mark.parametrize(
    ("failure", "problem"),
    [
        (503, "HTTP 503"),
        (httpx.ReadTimeout("slow"), "timed out"),
        (httpx.ConnectError("x"), "Conn"),
    ],
    ids=["503", "timeout", "connect"],
)
async def test_gives_up_after_the_retries(
    make: _Factory, provider: _FakeProvider, failure: int | Exception, problem: str
) -> None:
    provider.script = [failure] * 10
    embedder = await make(retries=2)

    with pytest.raises(EmbedderUnavailable, match=problem) as caught:
        await embedder.embed(["q 1"])

    assert len(provider.requests) == 3
    assert _ENDPOINT in str(caught.value)
    assert caught.value.details["attempts"] == 3


async def test_client_errors_are_not_retried(make: _Factory, provider: _FakeProvider) -> None:
    provider.script = [400]
    embedder = await make()

    with pytest.raises(EmbedderUnavailable, match="400"):
        await embedder.embed(["q 1"])

    assert len(provider.requests) == 1


async def test_wrong_dimension_is_refused(make: _Factory) -> None:
    provider = _FakeProvider(dimension=3)
    embedder = await make(transport=httpx.MockTransport(provider))

    with pytest.raises(EmbedderUnavailable, match=r"dimension 3, expected 4"):
        await embedder.embed(["q 1"])


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"data": [{"index": 0}]}',
        b'{"data": []}',
        b'{"data": [{"index": 0, "embedding": [0, 0, 0, 0]}]}',
    ],
    ids=["not-json", "no-embedding", "too-few", "zero-vector"],
)
async def test_malformed_answers_are_refused(
    make: _Factory, provider: _FakeProvider, body: bytes
) -> None:
    provider.script = [httpx.Response(200, content=body)]
    embedder = await make()

    with pytest.raises(EmbedderUnavailable, match="sent"):
        await embedder.embed(["q 1"])


async def test_empty_input_makes_no_request(make: _Factory, provider: _FakeProvider) -> None:
    embedder = await make()

    assert await embedder.embed([]) == []
    assert provider.requests == []


@pytest.mark.parametrize("texts", ["a bare string", ["ok", "  "], ["ok", 3]])
async def test_bad_texts_are_invalid_input(make: _Factory, texts: object) -> None:
    embedder = await make()

    with pytest.raises(InvalidInput):
        await embedder.embed(texts)  # type: ignore[arg-type]


async def test_embedding_before_start_is_unavailable(make: _Factory) -> None:
    with pytest.raises(EmbedderUnavailable, match="start"):
        await OpenAIEmbedder(base_url=_BASE_URL, model="m", dimensions=4).embed(["q 1"])


def test_model_name_carries_a_requested_dimension() -> None:
    plain = OpenAIEmbedder(base_url=_BASE_URL, model="m", dimensions=512)
    shortened = OpenAIEmbedder(base_url=_BASE_URL, model="m", dimensions=512, send_dimensions=True)

    assert (plain.model, plain.dimension) == ("m", 512)
    assert shortened.model == "m@512"


@pytest.mark.parametrize(
    "overrides",
    [
        {"base_url": "ftp://host/v1"},
        {"base_url": "not a url"},
        {"dimensions": 0},
        {"retries": -1},
        {"batch_size": 0},
        {"timeout": 0},
        {"model": ""},
    ],
)
def test_bad_settings_are_config_errors(overrides: dict[str, object]) -> None:
    params: dict[str, object] = {"base_url": _BASE_URL, "model": "m", "dimensions": 4}
    params.update(overrides)

    with pytest.raises(ConfigError):
        OpenAIEmbedder(**params)  # type: ignore[arg-type]
