"""A remote embedder speaking the OpenAI ``POST /embeddings`` protocol.

OpenAI serves it, and so do most self-hosted servers (vLLM, Ollama, LiteLLM,
text-embeddings-inference), so one adapter covers them all. Timeouts,
connection failures, 429 and 5xx are retried with exponential backoff and
jitter (stamina); anything else fails at once. Every failure leaves as
``EmbedderUnavailable`` naming the provider and status, never the API key.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np
import stamina

from membank_server.domain.errors import ConfigError, EmbedderUnavailable
from membank_server.embeddings._texts import checked_texts

__all__ = ["OpenAIEmbedder"]

_RETRYABLE_TRANSPORT_ERRORS: tuple[type[Exception], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
)
_EXCERPT_CHARS = 200


class _RetryableStatus(Exception):
    """A 429 or 5xx answer: worth another try after a backoff."""

    def __init__(self, status: int, excerpt: str) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.excerpt = excerpt


class OpenAIEmbedder:
    """Embeds texts with an OpenAI-compatible ``/embeddings`` endpoint.

    Texts go out in batches of ``batch_size``, one request after another so a
    large import does not trip the provider's rate limit; the vectors come back
    L2-normalised, in the order given.

    Args:
        base_url: The API root, e.g. ``https://api.openai.com/v1``.
        model: The provider's model name.
        dimensions: The vector size the provider must return.
        api_key: Sent as ``Authorization: Bearer``; omitted when ``None``.
        send_dimensions: Ask for ``dimensions`` in the request (models that can
            shorten their vectors, e.g. ``text-embedding-3-*``).
        timeout: Seconds allowed per HTTP request.
        retries: Further tries after a retryable failure (so ``retries + 1`` at most).
        batch_size: Texts per request.
        transport: An httpx transport to use instead of the network (tests, proxies).

    Raises:
        ConfigError: A parameter is out of range or the URL is not http(s).
    """

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        dimensions: int,
        api_key: str | None = None,
        send_dimensions: bool = False,
        timeout: float = 10.0,
        retries: int = 3,
        batch_size: int = 256,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        try:
            url = httpx.URL(base_url)
        except httpx.InvalidURL as exc:
            raise ConfigError(f"embedding base_url is not a valid URL: {exc}") from exc
        if url.scheme not in {"http", "https"} or not url.host:
            raise ConfigError("embedding base_url must be an http(s) URL with a host")
        if not model:
            raise ConfigError("embedding model name must not be empty")
        if dimensions < 1:
            raise ConfigError(f"embedding dimensions must be at least 1, got {dimensions}")
        if timeout <= 0:
            raise ConfigError(f"embedding timeout must be positive, got {timeout}")
        if retries < 0:
            raise ConfigError(f"embedding retries must not be negative, got {retries}")
        if batch_size < 1:
            raise ConfigError(f"embedding batch_size must be at least 1, got {batch_size}")
        self._base_url = url
        # Credentials in the URL must not reach error messages or logs.
        shown = url.copy_with(username=None, password=None, query=None, fragment=None)
        self._endpoint = str(shown).rstrip("/") + "/embeddings"
        self._model = model
        self._dimensions = dimensions
        self._api_key = api_key
        self._send_dimensions = send_dimensions
        self._timeout = timeout
        self._attempts = retries + 1
        self._batch_size = batch_size
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    @property
    def model(self) -> str:
        # A shortened vector is a different vector, so the size is part of the name.
        if self._send_dimensions:
            return f"{self._model}@{self._dimensions}"
        return self._model

    @property
    def dimension(self) -> int:
        return self._dimensions

    async def start(self) -> None:
        """Open the HTTP client; no request is made."""
        if self._client is not None:
            return
        headers = {"Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        self._client = httpx.AsyncClient(
            base_url=self._base_url,
            headers=headers,
            timeout=self._timeout,
            transport=self._transport,
        )

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed texts into unit-length vectors, in the order given.

        Raises:
            InvalidInput: ``texts`` is a bare string, or holds a non-string or blank text.
            EmbedderUnavailable: The provider failed after the retries, refused the
                request, or answered something that is not the expected vectors.
        """
        items = checked_texts(texts)
        if not items:
            return []
        client = self._client
        if client is None:
            raise EmbedderUnavailable("the embedding client is not open; call start() first")
        vectors: list[list[float]] = []
        for start in range(0, len(items), self._batch_size):
            vectors.extend(await self._embed_batch(client, items[start : start + self._batch_size]))
        return vectors

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def _embed_batch(self, client: httpx.AsyncClient, batch: list[str]) -> list[list[float]]:
        payload: dict[str, Any] = {"model": self._model, "input": batch}
        if self._send_dimensions:
            payload["dimensions"] = self._dimensions
        attempts = 0
        try:
            async for attempt in stamina.retry_context(
                on=(_RetryableStatus, *_RETRYABLE_TRANSPORT_ERRORS),
                attempts=self._attempts,
                timeout=None,
            ):
                with attempt:
                    attempts = attempt.num
                    response = await client.post("embeddings", json=payload)
                    if response.status_code == 429 or response.status_code >= 500:
                        raise _RetryableStatus(response.status_code, self._excerpt(response))
        except _RetryableStatus as exc:
            raise self._unavailable(
                f"answered HTTP {exc.status} after {attempts} attempt(s): {exc.excerpt}",
                status=exc.status,
                attempts=attempts,
            ) from exc
        except httpx.TimeoutException as exc:
            raise self._unavailable(
                f"timed out after {attempts} attempt(s) ({type(exc).__name__})", attempts=attempts
            ) from exc
        except httpx.HTTPError as exc:
            raise self._unavailable(
                f"failed after {attempts} attempt(s): {type(exc).__name__}: {self._scrub(exc)}",
                attempts=attempts,
            ) from exc
        if response.status_code != 200:
            raise self._unavailable(
                f"refused the request with HTTP {response.status_code}: {self._excerpt(response)}",
                status=response.status_code,
            )
        # Decoding thousands of floats takes tens of milliseconds: off the loop.
        try:
            return await asyncio.to_thread(_parse, response.content, len(batch), self._dimensions)
        except _MalformedResponse as exc:
            raise self._unavailable(str(exc), status=response.status_code) from exc

    def _unavailable(self, problem: str, **details: Any) -> EmbedderUnavailable:
        return EmbedderUnavailable(
            f"embedding provider {self._endpoint} {problem}",
            {"provider": self._endpoint, "model": self._model, **details},
        )

    def _excerpt(self, response: httpx.Response) -> str:
        try:
            body = response.json()
            message = body["error"]["message"] if isinstance(body, dict) else body
        except (ValueError, KeyError, TypeError):
            message = response.text
        # Scrub before cutting, or a secret cut in half would survive.
        text = " ".join(self._scrub(message).split())[:_EXCERPT_CHARS]
        return text or response.reason_phrase

    def _scrub(self, message: object) -> str:
        # Some servers echo the credentials they rejected.
        text = str(message)
        for secret in (self._api_key, self._base_url.password):
            if secret:
                text = text.replace(secret, "***")
        return text


class _MalformedResponse(Exception):
    """A 200 answer that is not the vectors asked for."""


def _parse(content: bytes, expected: int, dimensions: int) -> list[list[float]]:
    """The unit-length vectors of an embeddings response body, in input order."""
    try:
        data = json.loads(content)["data"]
        by_index = {int(item["index"]): item["embedding"] for item in data}
    except (ValueError, KeyError, TypeError) as exc:
        raise _MalformedResponse(f"sent a malformed embeddings response ({exc!r})") from exc
    if len(data) != expected or sorted(by_index) != list(range(expected)):
        raise _MalformedResponse(f"sent {len(data)} embeddings for {expected} inputs")
    vectors = [by_index[index] for index in range(expected)]
    if not all(isinstance(vector, list) for vector in vectors):
        raise _MalformedResponse("sent embeddings that are not lists of floats")
    sizes = sorted({len(vector) for vector in vectors})
    if sizes != [dimensions]:
        raise _MalformedResponse(
            f"sent vectors of dimension {', '.join(map(str, sizes))}, expected {dimensions}"
        )
    try:
        matrix = np.asarray(vectors, dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise _MalformedResponse(f"sent embeddings that are not numeric ({exc})") from exc
    if not np.isfinite(matrix).all():
        raise _MalformedResponse("sent vectors with NaN or infinite components")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    if (norms == 0).any():
        raise _MalformedResponse("sent an all-zero vector, which has no direction")
    rows: list[list[float]] = (matrix / norms).tolist()
    return rows
