"""Samples from a Prometheus server that scrapes membank's ``/metrics``.

One ``query_range`` per field of :class:`~membank_server.domain.capacity.Sample`,
from :data:`QUERIES` (``{sel}`` is the label selector given with
``--prometheus-selector``, e.g. ``job="membank"``), one point an hour by default.
Fields with no series (``membank_users`` and ``membank_disk_bytes`` before the
first census of a server, or from a store that cannot tell) read as 0, and the
source says so in ``notes``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from membank_server.domain.capacity import Sample
from membank_server.domain.errors import InvalidInput, Unavailable

__all__ = ["QUERIES", "PrometheusHistory"]

#: Sample field -> PromQL; ``<sel>`` becomes ``{selector}`` (or nothing). The request
#: metrics are Litestar's (prefix ``membank``; ``requests_error_total`` counts 5xx
#: answers), the process ones membank's own (the supervisor and every worker).
QUERIES: dict[str, str] = {
    "memories": "max(membank_memories<sel>)",
    "users": "max(membank_users<sel>)",
    "disk_bytes": "sum(membank_disk_bytes<sel>)",
    "rss_bytes": "sum(membank_process_resident_memory_bytes<sel>)",
    "rps": "sum(rate(membank_requests_total<sel>[5m]))",
    "p95_ms": "1000 * histogram_quantile(0.95, sum by (le) "
    "(rate(membank_request_duration_seconds_bucket<sel>[5m])))",
    "p99_ms": "1000 * histogram_quantile(0.99, sum by (le) "
    "(rate(membank_request_duration_seconds_bucket<sel>[5m])))",
    "cpu_percent": "100 * sum(rate(membank_process_cpu_seconds_total<sel>[5m]))",
    "errors_per_s": "sum(rate(membank_requests_error_total<sel>[5m]))",
}


class PrometheusHistory:
    """The :class:`~membank_server.domain.capacity.HistorySource` of a Prometheus server."""

    def __init__(
        self,
        url: str,
        *,
        selector: str = "",
        backend: str = "edge",
        dimension: int = 384,
        step: timedelta = timedelta(hours=1),
        lookback: timedelta = timedelta(days=120),
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.label = f"Prometheus at {self.url}"
        self.selector = selector
        self.backend, self.dimension = backend, dimension
        self.step, self.lookback = step, lookback
        self.notes: list[str] = []
        self._transport = transport

    async def _range(
        self, http: httpx.AsyncClient, field: str, start: datetime, end: datetime
    ) -> dict[float, float]:
        query = QUERIES[field].replace("<sel>", f"{{{self.selector}}}" if self.selector else "")
        params = {
            "query": query,
            "start": f"{start.timestamp():.3f}",
            "end": f"{end.timestamp():.3f}",
            "step": f"{int(self.step.total_seconds())}s",
        }
        try:
            r = await http.get("/api/v1/query_range", params=params)
        except httpx.TransportError as exc:
            raise Unavailable(f"cannot reach Prometheus at {self.url}: {exc}") from exc
        try:
            body: dict[str, Any] = r.json()
        except ValueError as exc:
            raise Unavailable(
                f"Prometheus at {self.url} answered {r.status_code}, not JSON"
            ) from exc
        if r.status_code != 200 or body.get("status") != "success":
            message = body.get("error", r.text[:200])
            if r.status_code == 400:
                raise InvalidInput(f"Prometheus refused {query!r}: {message}")
            raise Unavailable(f"Prometheus at {self.url} answered {r.status_code}: {message}")
        series = body["data"]["result"]
        if not series:
            return {}
        # Aggregated queries give one series; should a selector leave several, add them.
        points: dict[float, float] = {}
        for s in series:
            for ts, value in s["values"]:
                v = float(value)
                if v == v:  # NaN: histogram_quantile over an interval without requests
                    points[float(ts)] = points.get(float(ts), 0.0) + v
        return points

    async def samples(self, since: datetime | None) -> list[Sample]:
        end = datetime.now(UTC)
        start = since or end - self.lookback
        async with httpx.AsyncClient(
            base_url=self.url, timeout=60, transport=self._transport
        ) as http:
            got = {f: await self._range(http, f, start, end) for f in QUERIES}
        if not got["memories"]:
            raise InvalidInput(
                f"Prometheus at {self.url} has no membank_memories series"
                + (f" for {{{self.selector}}}" if self.selector else "")
                + ": is it scraping membank's /metrics?"
            )
        missing = sorted(f for f in QUERIES if not got[f])
        if missing:
            self.notes.append(f"no Prometheus series for {', '.join(missing)}: read as 0")
        samples = []
        for ts in sorted(got["memories"]):
            value = {f: got[f].get(ts) for f in QUERIES}
            samples.append(
                Sample(
                    at=datetime.fromtimestamp(ts, UTC),
                    memories=int(value["memories"] or 0),
                    users=int(value["users"] or 0),
                    disk_bytes=int(value["disk_bytes"] or 0),
                    rss_bytes=int(value["rss_bytes"] or 0),
                    rps=float(value["rps"] or 0.0),
                    p95_ms=value["p95_ms"],
                    p99_ms=value["p99_ms"],
                    cpu_percent=float(value["cpu_percent"] or 0.0),
                    errors_per_s=float(value["errors_per_s"] or 0.0),
                    backend=self.backend,
                    dimension=self.dimension,
                )
            )
        return samples
