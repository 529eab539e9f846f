"""WebhookAlerts: a failed scheduled backup POSTed as JSON to a configured URL.

Bounded retries with backoff on a connection error, a timeout, 429 or 5xx; any other
answer ends it (a 4xx will not change by asking again). A failure to alert is logged
with the URL's host only: webhook URLs often carry their token in the path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

__all__ = ["WebhookAlerts"]

_log = logging.getLogger("membank.backup")


class WebhookAlerts:
    """The :class:`~membank_server.domain.ports.BackupAlerts` port over an HTTP webhook.

    Args:
        url: Where to POST; never logged whole.
        retries: Attempts after the first.
        timeout: Seconds per attempt.
        backoff: Seconds before the first retry, doubled each time (at most 30).
        transport: An httpx transport (tests).
    """

    def __init__(
        self,
        url: str,
        *,
        retries: int = 3,
        timeout: float = 5.0,
        backoff: float = 0.5,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._url, self._retries, self._timeout = url, retries, timeout
        self._backoff, self._transport = backoff, transport
        self.host = urlsplit(url).hostname or "?"

    def __repr__(self) -> str:
        return f"WebhookAlerts(host={self.host!r})"

    async def failed(self, event: Mapping[str, Any]) -> None:
        body = {"event": "backup_failed", **event}
        problem = "no attempt"
        async with httpx.AsyncClient(timeout=self._timeout, transport=self._transport) as client:
            for attempt in range(self._retries + 1):
                if attempt:
                    await asyncio.sleep(min(self._backoff * 2 ** (attempt - 1), 30.0))
                try:
                    answer = await client.post(self._url, json=body)
                except httpx.HTTPError as exc:
                    problem = type(exc).__name__
                    continue
                if answer.status_code < 400:
                    return
                problem = f"HTTP {answer.status_code}"
                if answer.status_code != 429 and answer.status_code < 500:
                    break
        _log.error(
            "backup failure alert not delivered to the webhook at %s: %s", self.host, problem
        )
