"""The HTTP plumbing shared by the adapters that speak an OpenAI-compatible API.

OpenAI serves ``/embeddings`` and ``/chat/completions``, and so do vLLM, Ollama,
LiteLLM and most gateways. What the embedder and the language model need alike
lives here once: the base URL checked and shown without its credentials, the
client opened with the bearer key, a POST retried on timeouts, connection
failures, 429 and 5xx with exponential backoff and jitter (stamina), and error
excerpts scrubbed of the credentials a server may echo. Each adapter turns a
failure into its own error through the ``fail`` callable it passes in, so the
API key never reaches a message, a detail or a log line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import stamina

from membank_server.domain.errors import ConfigError, MembankError

__all__ = ["OpenAIHttp"]

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


class OpenAIHttp:
    """One OpenAI-compatible endpoint: ``{base_url}/{path}``, retried and scrubbed.

    Args:
        base_url: The API root, e.g. ``https://api.openai.com/v1``.
        path: The endpoint under it, e.g. ``embeddings``.
        setting: How configuration names the URL, for its error (``llm.base_url``).
        api_key: Sent as ``Authorization: Bearer``; omitted when None.
        timeout: Seconds per HTTP request.
        retries: Further tries after a retryable failure (``retries + 1`` at most).
        transport: An httpx transport instead of the network (tests, proxies).
        fail: Builds the adapter's error from a problem and its details; the
            problem already names the endpoint's failure, not the endpoint.
        quote_retried: Quote the provider's answer when it still fails after the
            retries (an embeddings provider's 5xx text helps; a chat model's may
            repeat the conversation).

    Raises:
        ConfigError: The URL is not http(s) with a host, or a number is out of range.
    """

    def __init__(
        self,
        base_url: str,
        path: str,
        *,
        setting: str,
        api_key: str | None,
        timeout: float,
        retries: int,
        transport: httpx.AsyncBaseTransport | None,
        fail: Callable[..., MembankError],
        quote_retried: bool,
    ) -> None:
        try:
            url = httpx.URL(base_url)
        except httpx.InvalidURL as exc:
            raise ConfigError(f"{setting} is not a valid URL: {exc}") from exc
        if url.scheme not in {"http", "https"} or not url.host:
            raise ConfigError(f"{setting} must be an http(s) URL with a host")
        if timeout <= 0:
            raise ConfigError(f"{setting}: the timeout must be positive, got {timeout}")
        if retries < 0:
            raise ConfigError(f"{setting}: retries must not be negative, got {retries}")
        self._base_url = url
        self._path = path
        # Credentials in the URL must not reach error messages or logs.
        shown = url.copy_with(username=None, password=None, query=None, fragment=None)
        self.endpoint = f"{str(shown).rstrip('/')}/{path}"
        self._api_key = api_key
        self._timeout = timeout
        self._attempts = retries + 1
        self._transport = transport
        self._fail = fail
        self._quote_retried = quote_retried
        self._client: httpx.AsyncClient | None = None

    @property
    def is_open(self) -> bool:
        return self._client is not None

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

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def post(self, payload: dict[str, Any]) -> httpx.Response:
        """POST ``payload`` as JSON; the 200 answer, or the adapter's error.

        The caller checks :attr:`is_open` first and raises its own error if not.
        """
        client = self._client
        assert client is not None, "post() before start()"
        attempts = 0
        try:
            async for attempt in stamina.retry_context(
                on=(_RetryableStatus, *_RETRYABLE_TRANSPORT_ERRORS),
                attempts=self._attempts,
                timeout=None,
            ):
                with attempt:
                    attempts = attempt.num
                    response = await client.post(self._path, json=payload)
                    if response.status_code == 429 or response.status_code >= 500:
                        raise _RetryableStatus(response.status_code, self.excerpt(response))
        except _RetryableStatus as exc:
            quoted = f": {exc.excerpt}" if self._quote_retried else ""
            raise self._fail(
                f"answered HTTP {exc.status} after {attempts} attempt(s){quoted}",
                status=exc.status,
                attempts=attempts,
            ) from exc
        except httpx.TimeoutException as exc:
            raise self._fail(
                f"timed out after {attempts} attempt(s) ({type(exc).__name__})", attempts=attempts
            ) from exc
        except httpx.HTTPError as exc:
            raise self._fail(
                f"failed after {attempts} attempt(s): {type(exc).__name__}: {self.scrub(exc)}",
                attempts=attempts,
            ) from exc
        if response.status_code != 200:
            raise self._fail(
                f"refused the request with HTTP {response.status_code}: {self.excerpt(response)}",
                status=response.status_code,
            )
        return response

    def excerpt(self, response: httpx.Response) -> str:
        """The start of an error answer's message, credentials scrubbed."""
        try:
            body = response.json()
            message = body["error"]["message"] if isinstance(body, dict) else body
        except (ValueError, KeyError, TypeError):
            message = response.text
        # Scrub before cutting, or a secret cut in half would survive.
        text = " ".join(self.scrub(message).split())[:_EXCERPT_CHARS]
        return text or response.reason_phrase

    def scrub(self, message: object) -> str:
        # Some servers echo the credentials they rejected.
        text = str(message)
        for secret in (self._api_key, self._base_url.password):
            if secret:
                text = text.replace(secret, "***")
        return text
