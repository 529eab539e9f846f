"""Prometheus metrics of the memory service, correct with one process or several workers.

Several workers (``membank serve --workers N``) use prometheus-client's
**multiprocess mode**: ``membank serve`` gives every worker the same fresh
``PROMETHEUS_MULTIPROC_DIR`` before it starts them, each worker writes its
counters and histograms to its own files there, and whichever worker answers
``/metrics`` adds them all up (Litestar's controller does, and so does
:meth:`PrometheusTelemetry.totals`). Gauges say how workers combine: a count of
the store (``membank_memories``) is the most recent any worker made, pool and
cache sizes are the sum over the live workers. With one process the same
metrics live in the default registry.

Label values are bounded: routes are their templates, store operations and cache
levels are fixed lists, tenants are the top few only and pseudonymised
(:mod:`~membank_server.observability.census`). No metric carries memory content,
a query, a key or a user id.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from membank_server.domain.observe import LATENCY_BUCKETS_MS, Census, Totals
from membank_server.observability.census import CensusCollector, publish_census
from membank_server.observability.pipeline import PipelineMetrics
from membank_server.observability.process import ProcessTreeCollector, machine, process_tree

__all__ = [
    "REQUEST_BUCKETS",
    "PrometheusTelemetry",
    "multiprocess_dir",
    "registry_for_scrape",
    "scrape",
    "start_metrics_listener",
]

_log = logging.getLogger("membank.storage")

_FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
#: The request-latency buckets (seconds) of Litestar's ``membank_request_duration_seconds``.
REQUEST_BUCKETS: list[str | float] = [ms / 1000 for ms in LATENCY_BUCKETS_MS]
#: Probes and the scrape itself are not traffic: left out of the SLIs.
_NOT_TRAFFIC = frozenset({"/health", "/ready", "/metrics"})


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class _HitRatio(Collector):
    """``membank_cache_hit_ratio`` per level from the look-up counters of every worker."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if multiprocess_dir() is None:
            families = _metrics()["level"].collect()
        else:
            families = multiprocess.MultiProcessCollector(None).collect()  # type: ignore[no-untyped-call]
        counts: dict[str, list[float]] = {}
        for family in families:
            for s in family.samples:
                if s.name == "membank_cache_lookups_total" and s.labels["outcome"] in (
                    "hit",
                    "miss",
                ):
                    seen = counts.setdefault(s.labels["level"], [0.0, 0.0])
                    seen[s.labels["outcome"] == "miss"] += s.value
        ratio = GaugeMetricFamily(
            "membank_cache_hit_ratio",
            "Hits / (hits + misses) per level, all workers",
            labels=["level"],
        )
        for level, (hits, misses) in sorted(counts.items()):
            if hits + misses:
                ratio.add_metric([level], hits / (hits + misses))
        yield ratio


def _ours() -> list[Collector]:
    return [ProcessTreeCollector(), CensusCollector(), _HitRatio()]


@functools.cache
def _default_registry() -> CollectorRegistry:
    for collector in _ours():
        REGISTRY.register(collector)
    return REGISTRY


def registry_for_scrape() -> CollectorRegistry:
    """Every worker's metrics (multiprocess mode) or this process's (the default registry),
    with the process tree's figures and the last census."""
    if multiprocess_dir() is None:
        return _default_registry()
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    for collector in _ours():
        registry.register(collector)
    return registry


def scrape() -> tuple[bytes, str]:
    """The text exposition of :func:`registry_for_scrape`, and its content type."""
    return generate_latest(registry_for_scrape()), CONTENT_TYPE_LATEST


@functools.cache
def _metrics() -> dict[str, Any]:
    # Registered once per process in the default registry (written to the shared
    # folder in multiprocess mode).
    return {
        "embed": Histogram(
            "membank_embedding_seconds", "Time to embed one batch of texts", buckets=_FAST
        ),
        "texts": Counter("membank_embedded_texts", "Texts embedded"),
        "search": Histogram(
            "membank_search_seconds", "Vector search time in the store", buckets=_FAST
        ),
        "store": Histogram(
            "membank_store_operation_seconds",
            "Time of one store operation, by operation and outcome (ok, error, unavailable)",
            ["operation", "outcome"],
            buckets=_FAST,
        ),
        "memories": Gauge(
            "membank_memories",
            "Live memories stored, as last counted",
            multiprocess_mode="livemostrecent",
        ),
        "level": Counter(
            "membank_cache_lookups", "Cache look-ups per level and outcome", ["level", "outcome"]
        ),
        "cached": Counter(
            "membank_cached_searches", "Searches through the result cache", ["outcome"]
        ),
        "lookup": Histogram(
            "membank_cache_lookup_seconds", "Result cache look-up time", buckets=_FAST
        ),
        "level_time": Histogram(
            "membank_cache_level_seconds",
            "Time of one read of one cache level (l1, l2, l3), hit or miss",
            ["level"],
            buckets=_FAST,
        ),
        "backups": Counter("membank_backups", "Backup runs by outcome", ["outcome"]),
        "backup_seconds": Histogram(
            "membank_backup_seconds",
            "Duration of a backup run",
            ["outcome"],
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600),
        ),
        "backup_bytes": Gauge("membank_backup_bytes", "Bytes stored by the last successful backup"),
        "backup_memories": Gauge(
            "membank_backup_memories", "Memory records in the last successful backup"
        ),
        "backup_last_success": Gauge(
            "membank_backup_last_success_timestamp_seconds", "When the last backup succeeded"
        ),
        "storage": Counter(
            "membank_storage_events",
            "Routing choices, fallbacks and outbox work of a hybrid store",
            ["kind", "backend"],
        ),
        "pool": Gauge(
            "membank_pool_connections",
            "PostgreSQL pool connections by pool and state (in_use, idle, max), all workers",
            ["pool", "state"],
            multiprocess_mode="livesum",
        ),
        "queue_max": Gauge(
            "membank_job_queue_capacity",
            "Job items the queue holds at most (jobs.queue_max_items)",
            multiprocess_mode="livemax",
        ),
        "l1": Gauge(
            "membank_cache_l1_size",
            "In-process cache held (entries, bytes) and its limits, all workers",
            ["what"],
            multiprocess_mode="livesum",
        ),
    }


class PrometheusTelemetry(PipelineMetrics):
    """The :class:`~membank_server.domain.telemetry.Telemetry` port on prometheus_client
    (the job pipeline's metrics in :class:`PipelineMetrics`), and the server's totals
    read back from the same metrics."""

    def __init__(self) -> None:
        self._m = _metrics()

    def embedding(self, seconds: float, texts: int) -> None:
        self._m["embed"].observe(seconds)
        self._m["texts"].inc(texts)

    def search(self, seconds: float, hits: int) -> None:
        self._m["search"].observe(seconds)

    def store_operation(self, operation: str, seconds: float, outcome: str) -> None:
        self._m["store"].labels(operation, outcome).observe(seconds)

    def memories(self, count: int) -> None:
        self._m["memories"].set(count)

    def cache_level(self, level: str, outcome: str) -> None:
        self._m["level"].labels(level, outcome).inc()

    def storage_event(self, kind: str, fields: dict[str, Any]) -> None:
        backend = str(fields.get("backend") or fields.get("to") or "")
        self._m["storage"].labels(kind, backend).inc()
        # Routing and the outbox's routine work happen on every write or read: counted,
        # logged at debug; fallbacks, retries and failures are worth a warning.
        routine = kind in ("route", "outbox_enqueued", "outbox_applied")
        _log.log(logging.DEBUG if routine else logging.WARNING, "storage %s: %s", kind, fields)

    def cache_level_seconds(self, level: str, seconds: float) -> None:
        self._m["level_time"].labels(level).observe(seconds)

    def cached_search(self, outcome: str, seconds: float) -> None:
        self._m["cached"].labels(outcome).inc()
        self._m["lookup"].observe(seconds)

    def gauge(self, name: str, labels: tuple[str, ...], value: float) -> None:
        """Set one of this process's gauges: ``pool`` (pool, state), ``l1`` (what),
        ``queue_max`` (no label)."""
        gauge = self._m[name]
        (gauge.labels(*labels) if labels else gauge).set(value)

    def census(self, census: Census) -> None:
        publish_census(census)

    def totals(self) -> Totals:
        """The whole server's cumulative figures now (every worker's, in multiprocess mode)."""
        return read_totals(registry_for_scrape().collect(), process_tree())

    def backup(self, outcome: str, seconds: float, stored_bytes: int, memories: int) -> None:
        self._m["backups"].labels(outcome).inc()
        self._m["backup_seconds"].labels(outcome).observe(seconds)
        if outcome == "success":
            self._m["backup_bytes"].set(stored_bytes)
            self._m["backup_memories"].set(memories)
            self._m["backup_last_success"].set_to_current_time()


def read_totals(families: Any, process: tuple[float, int]) -> Totals:
    """Totals from collected metric families (Litestar's request metrics, our cache counters)."""
    requests = server = client = 0
    buckets: dict[float, float] = {}
    cache: dict[str, dict[str, int]] = {}
    in_flight = 0.0
    queue = {"depth": 0.0, "capacity": 0.0, "workers": 0.0}
    for family in families:
        for s in family.samples:
            labels = s.labels
            if s.name == "membank_requests_total":
                if labels.get("path") in _NOT_TRAFFIC:
                    continue
                status = int(labels.get("status_code", 200))
                requests += int(s.value)
                server += int(s.value) if status >= 500 else 0
                client += int(s.value) if 400 <= status < 500 else 0
            elif s.name == "membank_request_duration_seconds_bucket":
                if labels.get("path") in _NOT_TRAFFIC:
                    continue
                le = float(labels["le"])
                buckets[le] = buckets.get(le, 0.0) + s.value
            elif s.name == "membank_cache_lookups_total":
                level = cache.setdefault(labels["level"], {})
                level[labels["outcome"]] = level.get(labels["outcome"], 0) + int(s.value)
            elif s.name == "membank_requests_in_progress":
                in_flight += s.value
            elif s.name == "membank_job_queue_depth":
                queue["depth"] += s.value
            elif s.name == "membank_job_workers":
                queue["workers"] += s.value
            elif s.name == "membank_job_queue_capacity":
                queue["capacity"] = max(queue["capacity"], s.value)
    cumulative = [buckets.get(ms / 1000, 0.0) for ms in LATENCY_BUCKETS_MS]
    cumulative.append(buckets.get(float("inf"), cumulative[-1] if cumulative else 0.0))
    latency = tuple(round(c - (cumulative[i - 1] if i else 0.0)) for i, c in enumerate(cumulative))
    cpu, rss = process
    memory, cpus = machine()
    return Totals(
        at=datetime.now(UTC),
        requests=requests,
        server_errors=server,
        client_errors=client,
        latency=latency,
        cpu_seconds=cpu,
        rss_bytes=rss,
        in_flight=int(in_flight),
        cache=cache,
        memory_limit_bytes=memory,
        cpus=cpus,
        queue_depth=int(queue["depth"]),
        queue_capacity=int(queue["capacity"]),
        job_workers=int(queue["workers"]),
    )


def start_metrics_listener(address: str) -> Callable[[], None]:
    """Serve every worker's metrics at ``http://address/metrics`` from a thread; the closer."""
    host, _, port = address.rpartition(":")
    server, thread = start_http_server(
        int(port), addr=host.strip("[]") or "127.0.0.1", registry=registry_for_scrape()
    )

    def close() -> None:
        server.shutdown()
        server.server_close()
        thread.join(5)

    return close
