"""HttpReranker: a cross-encoder behind a ``POST /rerank`` HTTP API, with a breaker.

Speaks the shape text-embeddings-inference (TEI) serves and the Cohere/Jina-style
one most OpenAI-compatible gateways (LiteLLM, vLLM, Infinity) do: a request
``{"query", "texts" | "documents", "model"?}``, an answer that is a list of
``{"index", "score"}`` (TEI) or ``{"results": [{"index", "relevance_score"}]}``.
Both fields are sent, so either server reads its own. One request per search, with
a timeout; no retry (a search waits for nobody). After ``failure_threshold`` failures
in a row the breaker opens and calls fail at once for ``cooldown`` seconds, then one
trial call decides. Failures leave as ``EmbedderUnavailable``, naming the status,
never the API key or a document.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from membank_server.domain.errors import ConfigError, EmbedderUnavailable

__all__ = ["HttpReranker"]


class HttpReranker:
    """A :class:`~membank_server.domain.ports.Reranker` over HTTP.

    Args:
        base_url: The server's root; requests go to ``<base_url>/rerank``.
        model: Sent as ``model`` when given (gateways serving several).
        api_key: Sent as ``Authorization: Bearer``; omitted when None.
        timeout: Seconds allowed per request.
        failure_threshold: Failures in a row that open the breaker.
        cooldown: Seconds the open breaker fails calls without trying.
        transport: An httpx transport instead of the network (tests).
        clock: Monotonic seconds (tests).
    """

    def __init__(
        self,
        *,
        base_url: str,
        model: str | None = None,
        api_key: str | None = None,
        timeout: float = 2.0,
        failure_threshold: int = 3,
        cooldown: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        url = httpx.URL(base_url)
        if url.scheme not in {"http", "https"} or not url.host:
            raise ConfigError("search.rerank_url must be an http(s) URL with a host")
        headers = {"Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        shown = url.copy_with(username=None, password=None, query=None, fragment=None)
        self._where = str(shown).rstrip("/") + "/rerank"
        self._client = httpx.AsyncClient(
            base_url=url, headers=headers, timeout=timeout, transport=transport
        )
        self._model = model
        self._threshold = failure_threshold
        self._cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._open_until = 0.0

    async def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        if not documents:
            return []
        if self._failures >= self._threshold and self._clock() < self._open_until:
            raise EmbedderUnavailable(f"reranker {self._where}: circuit open after failures")
        body: dict[str, Any] = {"query": query, "texts": list(documents)}
        body["documents"] = body["texts"]
        if self._model:
            body["model"] = self._model
        try:
            response = await self._client.post("rerank", json=body)
            if response.status_code != 200:
                raise EmbedderUnavailable(
                    f"reranker {self._where} answered HTTP {response.status_code}"
                )
            scores = _scores(response.json(), len(documents))
        except (httpx.HTTPError, ValueError) as exc:  # ValueError: a body that is not JSON
            self._failed()
            raise EmbedderUnavailable(
                f"reranker {self._where} failed: {type(exc).__name__}"
            ) from None
        except EmbedderUnavailable:
            self._failed()
            raise
        self._failures = 0
        return scores

    def _failed(self) -> None:
        self._failures += 1
        if self._failures >= self._threshold:
            self._open_until = self._clock() + self._cooldown

    async def aclose(self) -> None:
        await self._client.aclose()


def _scores(answer: Any, count: int) -> list[float]:
    """Scores by document index, from a TEI list or a Cohere-style ``results``."""
    items: Any = answer.get("results") if isinstance(answer, dict) else answer
    scores: list[float | None] = [None] * count
    try:
        for item in items:
            score = item.get("relevance_score", item.get("score"))
            scores[int(item["index"])] = float(score)
    except (TypeError, KeyError, ValueError, IndexError, AttributeError):
        raise EmbedderUnavailable("the reranker's answer is not a list of scores") from None
    if any(s is None for s in scores):
        raise EmbedderUnavailable("the reranker's answer lacks a score for some document")
    return [float(s) for s in scores if s is not None]
