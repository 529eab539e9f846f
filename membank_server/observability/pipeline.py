"""Prometheus metrics of the ingestion pipeline: worker pools, the job queue, batches."""

from __future__ import annotations

import functools
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

__all__ = ["PipelineMetrics"]

_WAIT = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0)
_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


@functools.cache
def _metrics() -> dict[str, Any]:
    return {
        "workers": Gauge("membank_job_workers", "Workers of a job kind's pool", ["kind"]),
        "waiting": Gauge(
            "membank_job_queue_depth", "Items of a job kind waiting (pending or running)", ["kind"]
        ),
        "batch": Histogram(
            "membank_job_batch_items", "Items a worker took at once", ["kind"], buckets=_SIZES
        ),
        "wait": Histogram(
            "membank_job_wait_seconds",
            "How long the oldest item of a batch waited in the queue",
            ["kind"],
            buckets=_WAIT,
        ),
        "items": Counter(
            "membank_job_items",
            "Items processed, by outcome (done, dead, retry)",
            ["kind", "outcome"],
        ),
        "embed": Histogram(
            "membank_embed_batch_texts",
            "Texts the embedding batcher ran together",
            ["lane"],
            buckets=_SIZES,
        ),
        "embed_wait": Histogram(
            "membank_embed_batch_wait_seconds",
            "How long the first call of a batch waited for it to run",
            ["lane"],
            buckets=_WAIT,
        ),
    }


class PipelineMetrics:
    """The pipeline's part of the Telemetry port (mixed into ``PrometheusTelemetry``)."""

    def job_pool(self, kind: str, workers: int, waiting: int) -> None:
        m = _metrics()
        m["workers"].labels(kind).set(workers)
        m["waiting"].labels(kind).set(waiting)

    def job_batch(self, kind: str, items: int, waited: float) -> None:
        m = _metrics()
        m["batch"].labels(kind).observe(items)
        m["wait"].labels(kind).observe(waited)

    def job_items(self, kind: str, outcome: str, count: int) -> None:
        _metrics()["items"].labels(kind, outcome).inc(count)

    def embed_batch(self, lane: str, texts: int, waited: float) -> None:
        m = _metrics()
        m["embed"].labels(lane).observe(texts)
        m["embed_wait"].labels(lane).observe(waited)
