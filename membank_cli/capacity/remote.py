"""Samples from a running membank server: ``GET /v1/admin/history?since=`` (admin key).

The endpoint answers ``{"samples": [Sample, ...]}`` oldest first, each sample a JSON
object with the field names of :class:`~membank_server.domain.capacity.Sample` and
``at`` in ISO 8601 with an offset. A server without the endpoint answers 404, said
here in one line with the other sources to use.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from membank_server.domain.capacity import ADDED_COLUMNS, SAMPLE_FIELDS, Sample
from membank_server.domain.errors import ConfigError, InvalidInput, Unavailable

__all__ = ["HISTORY_PATH", "ServerHistory", "sample_from_json"]

HISTORY_PATH = "/v1/admin/history"


def sample_from_json(item: dict[str, Any]) -> Sample:
    """One sample of the endpoint's answer.

    Raises:
        InvalidInput: a field is missing or of the wrong type.
    """
    try:
        values = {f: item[f] for f in SAMPLE_FIELDS if f in item or f not in ADDED_COLUMNS}
        values["at"] = datetime.fromisoformat(str(values["at"]))
        if values["at"].tzinfo is None:
            raise ValueError("at has no UTC offset")
        return Sample(**values)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"a history sample is malformed: {exc}") from exc


class ServerHistory:
    """The :class:`~membank_server.domain.capacity.HistorySource` of a running server."""

    def __init__(
        self, url: str, api_key: str | None, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.url = url.rstrip("/")
        self.label = f"server {self.url}"
        self.notes: list[str] = []
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._transport = transport

    async def samples(self, since: datetime | None) -> list[Sample]:
        params = {"since": since.isoformat()} if since else {}
        try:
            async with httpx.AsyncClient(
                base_url=self.url, headers=self._headers, timeout=60, transport=self._transport
            ) as http:
                r = await http.get(HISTORY_PATH, params=params)
        except httpx.TransportError as exc:
            raise Unavailable(f"cannot reach the server at {self.url}: {exc}") from exc
        if r.status_code == 404:
            raise ConfigError(
                f"the server at {self.url} has no {HISTORY_PATH} endpoint: "
                "use --history FILE, --prometheus URL or --simulate"
            )
        if r.status_code in (401, 403):
            raise ConfigError(f"{HISTORY_PATH} answered {r.status_code}: it needs an admin key")
        if r.status_code != 200:
            raise Unavailable(f"{HISTORY_PATH} answered {r.status_code}: {r.text[:200]}")
        try:
            items = r.json()["samples"]
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInput(f"{HISTORY_PATH} did not answer {{'samples': [...]}}") from exc
        return [sample_from_json(i) for i in items]
