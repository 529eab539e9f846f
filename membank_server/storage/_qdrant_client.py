"""The one boundary every qdrant-client call passes: connect, retry, translate, close."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TypeVar

import stamina
from qdrant_client import AsyncQdrantClient

from membank_server.domain.errors import StorageUnavailable
from membank_server.storage._qdrant_errors import DRIVER_ERRORS, describe, transient

__all__ = ["QdrantConnection"]

_T = TypeVar("_T")


class QdrantConnection:
    """A client of one collection's server (or of local mode).

    Transient failures (transport errors, 5xx, gRPC ``UNAVAILABLE``) are retried with
    backoff; every driver error becomes :class:`StorageUnavailable`, its message
    naming the collection and never the API key. A 4xx is never retried.
    """

    def __init__(
        self,
        collection: str,
        *,
        url: str | None,
        api_key: str | None,
        location: str | None,
        path: str | None,
        timeout: float,
        prefer_grpc: bool,
        retries: int,
    ) -> None:
        self.collection = collection
        self._api_key = api_key
        self._connect = partial(
            AsyncQdrantClient,
            location=location,
            url=url,
            path=path,
            api_key=api_key,
            timeout=math.ceil(timeout),
            prefer_grpc=prefer_grpc,
        )
        self._retries = retries
        self._client: AsyncQdrantClient | None = None

    def open(self) -> None:
        if self._client is None:
            try:
                self._client = self._connect()
            except DRIVER_ERRORS as exc:
                raise StorageUnavailable(self.message("connect", exc)) from exc

    async def call(self, what: str, op: Callable[[AsyncQdrantClient], Awaitable[_T]]) -> _T:
        """Run one client call: retry transient failures, translate every driver error."""
        client = self._client
        if client is None:
            raise StorageUnavailable("the Qdrant store is not open")
        try:
            async for attempt in stamina.retry_context(on=transient, attempts=self._retries):
                with attempt:
                    return await op(client)
        except DRIVER_ERRORS as exc:
            raise StorageUnavailable(self.message(what, exc)) from exc
        raise AssertionError("unreachable: stamina makes at least one attempt")

    def message(self, what: str, exc: BaseException) -> str:
        text = f"Qdrant cannot {what} ({self.collection!r}): {describe(exc)}"
        return text.replace(self._api_key, "***") if self._api_key else text

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            try:
                await client.close()
            except DRIVER_ERRORS as exc:
                raise StorageUnavailable(self.message("close the client", exc)) from exc
