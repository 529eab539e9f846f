"""A language model speaking the OpenAI ``POST /chat/completions`` protocol.

OpenAI serves it, and so do vLLM, Ollama, LiteLLM and most gateways. Structured
output is asked for with ``response_format: {"type": "json_schema", ...}``; what
comes back is decoded here and checked by the caller. Timeouts, connection
failures, 429 and 5xx are retried with exponential backoff and jitter (stamina);
anything else fails at once. Every failure leaves as ``ModelUnavailable`` (or
``ModelOutputInvalid`` for an answer that is not JSON) naming the endpoint and
status, never the API key, nor what the conversation said.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx
import stamina

from membank_server.domain.errors import ConfigError, ModelOutputInvalid, ModelUnavailable
from membank_server.domain.llm import ModelAnswer

__all__ = ["OpenAIChat"]

_RETRYABLE: tuple[type[Exception], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
)
_EXCERPT = 200


class _RetryableStatus(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


class OpenAIChat:
    """The :class:`~membank_server.domain.llm.LanguageModel` port over httpx.

    Args:
        base_url: The API root, e.g. ``https://api.openai.com/v1``.
        model: The provider's model name.
        api_key: Sent as ``Authorization: Bearer``; omitted when None.
        timeout: Seconds per HTTP request.
        retries: Further tries after a retryable failure.
        max_tokens: Most tokens per answer.
        temperature: Sampling temperature (0: as deterministic as the model gets).
        transport: An httpx transport instead of the network (tests).

    Raises:
        ConfigError: the URL is not http(s) or a parameter is out of range.
    """

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 30.0,
        retries: int = 2,
        max_tokens: int = 1024,
        temperature: float = 0.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        try:
            url = httpx.URL(base_url)
        except httpx.InvalidURL as exc:
            raise ConfigError(f"llm.base_url is not a valid URL: {exc}") from exc
        if url.scheme not in {"http", "https"} or not url.host:
            raise ConfigError("llm.base_url must be an http(s) URL with a host")
        if not model:
            raise ConfigError("llm.model must not be empty")
        self._base_url = url
        shown = url.copy_with(username=None, password=None, query=None, fragment=None)
        self._endpoint = str(shown).rstrip("/") + "/chat/completions"
        self._model = model
        self._api_key = api_key
        self._timeout = timeout
        self._attempts = retries + 1
        self._max_tokens = max_tokens
        self._temperature = temperature
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    def __repr__(self) -> str:
        return f"<OpenAIChat {self._model} at {self._endpoint}>"

    @property
    def model(self) -> str:
        return self._model

    async def start(self) -> None:
        if self._client is not None:
            return
        headers = {"Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        self._client = httpx.AsyncClient(
            base_url=self._base_url, headers=headers, timeout=self._timeout,
            transport=self._transport,
        )  # fmt: skip

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def complete_json(
        self, system: str, user: str, schema_name: str, schema: Mapping[str, Any]
    ) -> ModelAnswer:
        client = self._client
        if client is None:
            raise ModelUnavailable("the language model client is not open")
        payload = {
            "model": self._model,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": schema_name, "schema": dict(schema), "strict": True},
            },
            "max_tokens": self._max_tokens,
            "temperature": self._temperature,
        }
        response = await self._post(client, payload)
        try:
            body = response.json()
            content = body["choices"][0]["message"]["content"]
            usage = body.get("usage") or {}
            tokens = int(usage.get("total_tokens") or 0)
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise ModelOutputInvalid(
                f"language model {self._endpoint} sent a response that is not a chat completion",
                {"provider": self._endpoint},
            ) from exc
        if not isinstance(content, str):
            raise ModelOutputInvalid(
                f"language model {self._endpoint} answered no text", {"provider": self._endpoint}
            )
        try:
            data = json.loads(content)
        except ValueError as exc:
            raise ModelOutputInvalid(
                f"language model {self._endpoint} answered text that is not JSON "
                f"({len(content)} characters)",
                {"provider": self._endpoint, "step": schema_name},
            ) from exc
        return ModelAnswer(data, tokens)

    async def _post(self, client: httpx.AsyncClient, payload: dict[str, Any]) -> httpx.Response:
        attempts = 0
        try:
            async for attempt in stamina.retry_context(
                on=(_RetryableStatus, *_RETRYABLE), attempts=self._attempts, timeout=None
            ):
                with attempt:
                    attempts = attempt.num
                    response = await client.post("chat/completions", json=payload)
                    if response.status_code == 429 or response.status_code >= 500:
                        raise _RetryableStatus(response.status_code)
        except _RetryableStatus as exc:
            raise self._unavailable(
                f"answered HTTP {exc.status} after {attempts} attempt(s)", status=exc.status
            ) from exc
        except httpx.TimeoutException as exc:
            raise self._unavailable(f"timed out after {attempts} attempt(s)") from exc
        except httpx.HTTPError as exc:
            raise self._unavailable(
                f"failed after {attempts} attempt(s): {type(exc).__name__}"
            ) from exc
        if response.status_code != 200:
            raise self._unavailable(
                f"refused the request with HTTP {response.status_code}: {self._excerpt(response)}",
                status=response.status_code,
            )
        return response

    def _unavailable(self, problem: str, **details: Any) -> ModelUnavailable:
        return ModelUnavailable(
            f"language model {self._endpoint} {problem}",
            {"provider": self._endpoint, "model": self._model, **details},
        )

    def _excerpt(self, response: httpx.Response) -> str:
        try:
            body = response.json()
            message = body["error"]["message"] if isinstance(body, dict) else body
        except (ValueError, KeyError, TypeError):
            message = response.text
        text = str(message)
        # Some servers echo the credentials they rejected: scrubbed before cutting.
        for secret in (self._api_key, self._base_url.password):
            if secret:
                text = text.replace(secret, "***")
        return " ".join(text.split())[:_EXCERPT] or response.reason_phrase
