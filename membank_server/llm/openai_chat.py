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

from membank_server.domain.errors import ConfigError, ModelOutputInvalid, ModelUnavailable
from membank_server.domain.llm import ModelAnswer
from membank_server.openai_http import OpenAIHttp

__all__ = ["OpenAIChat"]


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
        if not model:
            raise ConfigError("llm.model must not be empty")
        self._http = OpenAIHttp(
            base_url,
            "chat/completions",
            setting="llm.base_url",
            api_key=api_key,
            timeout=timeout,
            retries=retries,
            transport=transport,
            fail=self._unavailable,
            # A 5xx text may repeat the conversation: only the status is told.
            quote_retried=False,
        )
        self._endpoint = self._http.endpoint
        self._model = model
        self._max_tokens = max_tokens
        self._temperature = temperature

    def __repr__(self) -> str:
        return f"<OpenAIChat {self._model} at {self._endpoint}>"

    @property
    def model(self) -> str:
        return self._model

    async def start(self) -> None:
        await self._http.start()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def complete_json(
        self, system: str, user: str, schema_name: str, schema: Mapping[str, Any]
    ) -> ModelAnswer:
        if not self._http.is_open:
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
        response = await self._http.post(payload)
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

    def _unavailable(self, problem: str, **details: Any) -> ModelUnavailable:
        return ModelUnavailable(
            f"language model {self._endpoint} {problem}",
            {"provider": self._endpoint, "model": self._model, **details},
        )
