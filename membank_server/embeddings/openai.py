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

from membank_server.domain.errors import ConfigError, EmbedderUnavailable
from membank_server.embeddings._texts import checked_texts
from membank_server.openai_http import OpenAIHttp

__all__ = ["OpenAIEmbedder"]


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
        if not model:
            raise ConfigError("embedding model name must not be empty")
        if dimensions < 1:
            raise ConfigError(f"embedding dimensions must be at least 1, got {dimensions}")
        if batch_size < 1:
            raise ConfigError(f"embedding batch_size must be at least 1, got {batch_size}")
        self._http = OpenAIHttp(
            base_url,
            "embeddings",
            setting="embedding base_url",
            api_key=api_key,
            timeout=timeout,
            retries=retries,
            transport=transport,
            fail=self._unavailable,
            quote_retried=True,
        )
        self._model = model
        self._dimensions = dimensions
        self._send_dimensions = send_dimensions
        self._batch_size = batch_size

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
        await self._http.start()

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
        if not self._http.is_open:
            raise EmbedderUnavailable("the embedding client is not open; call start() first")
        vectors: list[list[float]] = []
        for start in range(0, len(items), self._batch_size):
            vectors.extend(await self._embed_batch(items[start : start + self._batch_size]))
        return vectors

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _embed_batch(self, batch: list[str]) -> list[list[float]]:
        payload: dict[str, Any] = {"model": self._model, "input": batch}
        if self._send_dimensions:
            payload["dimensions"] = self._dimensions
        response = await self._http.post(payload)
        # Decoding thousands of floats takes tens of milliseconds: off the loop.
        try:
            return await asyncio.to_thread(_parse, response.content, len(batch), self._dimensions)
        except _MalformedResponse as exc:
            raise self._unavailable(str(exc), status=response.status_code) from exc

    def _unavailable(self, problem: str, **details: Any) -> EmbedderUnavailable:
        endpoint = self._http.endpoint
        return EmbedderUnavailable(
            f"embedding provider {endpoint} {problem}",
            {"provider": endpoint, "model": self._model, **details},
        )


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
