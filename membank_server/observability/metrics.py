"""Prometheus metrics of the memory service."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from membank_server.observability.pipeline import PipelineMetrics

__all__ = ["PrometheusTelemetry", "start_metrics_listener"]

_log = logging.getLogger("membank.storage")

_FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@functools.cache
def _metrics() -> dict[str, Any]:
    # Registered once per process in the default registry that /metrics serves.
    return {
        "embed": Histogram(
            "membank_embedding_seconds", "Time to embed one batch of texts", buckets=_FAST
        ),
        "texts": Counter("membank_embedded_texts", "Texts embedded"),
        "search": Histogram(
            "membank_search_seconds", "Vector search time in the store", buckets=_FAST
        ),
        "memories": Gauge("membank_memories", "Live memories stored, as last counted"),
        "level": Counter(
            "membank_cache_lookups", "Cache look-ups per level and outcome", ["level", "outcome"]
        ),
        "ratio": Gauge("membank_cache_hit_ratio", "Hits / (hits + misses) per level", ["level"]),
        "cached": Counter(
            "membank_cached_searches", "Searches through the result cache", ["outcome"]
        ),
        "lookup": Histogram(
            "membank_cache_lookup_seconds", "Result cache look-up time", buckets=_FAST
        ),
        "storage": Counter(
            "membank_storage_events",
            "Routing choices, fallbacks and outbox work of a hybrid store",
            ["kind", "backend"],
        ),
    }


class PrometheusTelemetry(PipelineMetrics):
    """The :class:`~membank_server.domain.telemetry.Telemetry` port on prometheus_client
    (the job pipeline's metrics in :class:`PipelineMetrics`)."""

    def __init__(self) -> None:
        self._m = _metrics()
        self._hits: dict[str, list[int]] = {}

    def embedding(self, seconds: float, texts: int) -> None:
        self._m["embed"].observe(seconds)
        self._m["texts"].inc(texts)

    def search(self, seconds: float, hits: int) -> None:
        self._m["search"].observe(seconds)

    def memories(self, count: int) -> None:
        self._m["memories"].set(count)

    def cache_level(self, level: str, outcome: str) -> None:
        self._m["level"].labels(level, outcome).inc()
        if outcome in ("hit", "miss"):
            counts = self._hits.setdefault(level, [0, 0])
            counts[outcome == "miss"] += 1
            self._m["ratio"].labels(level).set(counts[0] / (counts[0] + counts[1]))

    def storage_event(self, kind: str, fields: dict[str, Any]) -> None:
        backend = str(fields.get("backend") or fields.get("to") or "")
        self._m["storage"].labels(kind, backend).inc()
        # Routing and the outbox's routine work happen on every write or read: counted,
        # logged at debug; fallbacks, retries and failures are worth a warning.
        routine = kind in ("route", "outbox_enqueued", "outbox_applied")
        _log.log(logging.DEBUG if routine else logging.WARNING, "storage %s: %s", kind, fields)

    def cached_search(self, outcome: str, seconds: float) -> None:
        self._m["cached"].labels(outcome).inc()
        self._m["lookup"].observe(seconds)


def start_metrics_listener(address: str) -> Callable[[], None]:
    """Serve the default registry at ``http://address/metrics`` from a thread; the closer."""
    host, _, port = address.rpartition(":")
    server, thread = start_http_server(int(port), addr=host.strip("[]") or "127.0.0.1")

    def close() -> None:
        server.shutdown()
        server.server_close()
        thread.join(5)

    return close
