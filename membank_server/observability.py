"""Prometheus metrics of the memory service, and logging setup."""

from __future__ import annotations

import functools
import logging
import sys

import structlog
from prometheus_client import Counter, Gauge, Histogram

__all__ = ["PrometheusTelemetry", "configure_logging"]

_FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@functools.cache
def _metrics() -> tuple[Histogram, Counter, Histogram, Gauge]:
    # Registered once per process in the default registry that /metrics serves.
    return (
        Histogram("membank_embedding_seconds", "Time to embed one batch of texts", buckets=_FAST),
        Counter("membank_embedded_texts", "Texts embedded"),
        Histogram("membank_search_seconds", "Vector search time in the store", buckets=_FAST),
        Gauge("membank_memories", "Live memories stored, as last counted"),
    )


class PrometheusTelemetry:
    """The :class:`~membank_server.domain.telemetry.Telemetry` port on prometheus_client."""

    def __init__(self) -> None:
        self._embed, self._texts, self._search, self._memories = _metrics()

    def embedding(self, seconds: float, texts: int) -> None:
        self._embed.observe(seconds)
        self._texts.inc(texts)

    def search(self, seconds: float, hits: int) -> None:
        self._search.observe(seconds)

    def memories(self, count: int) -> None:
        self._memories.set(count)


def configure_logging(level: str = "info", json: bool = False) -> None:
    """Route stdlib and structlog records through one structlog renderer on stderr."""
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
