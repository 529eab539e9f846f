"""The port through which services report what they measure."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

from membank_server.domain.observe import Census, Totals

__all__ = ["MetricsReader", "NullTelemetry", "Telemetry"]


class Telemetry(Protocol):
    def embedding(self, seconds: float, texts: int) -> None:
        """One call to the embedder that embedded ``texts`` texts."""
        ...

    def search(self, seconds: float, hits: int) -> None:
        """One vector search in the store."""
        ...

    def memories(self, count: int) -> None:
        """The number of live memories stored, as last counted."""
        ...

    def cache_level(self, level: str, outcome: str) -> None:
        """One look-up in one cache level: ``hit``, ``miss`` or ``error``."""
        ...

    def cache_level_seconds(self, level: str, seconds: float) -> None:
        """How long one read of one cache level took (a hit, a miss or a failure)."""
        ...

    def storage_event(self, kind: str, fields: dict[str, Any]) -> None:
        """A composite store's routing choice, fallback or outbox work."""
        ...

    def cached_search(self, outcome: str, seconds: float) -> None:
        """One search through the result cache (``hit``/``miss``/``bypass``), and the
        time its cache look-up took."""
        ...

    def store_operation(self, operation: str, seconds: float, outcome: str) -> None:
        """One call to the store (``search``, ``upsert``...): ``ok``, ``error`` or
        ``unavailable``."""
        ...

    def gauge(self, name: str, labels: tuple[str, ...], value: float) -> None:
        """This process's share of a gauge summed over workers: ``pool`` (pool, state),
        ``l1`` (what); or ``queue_max`` (no label), the job queue's limit."""
        ...

    def census(self, census: Census) -> None:
        """The last count of users, disk and the largest tenants."""
        ...

    def backup(self, outcome: str, seconds: float, stored_bytes: int, memories: int) -> None:
        """One backup run (``success`` or ``failure``): how long, bytes stored, memories."""
        ...

    def job_pool(self, kind: str, workers: int, waiting: int) -> None:
        """A worker pool's size and its kind's items waiting in the queue, as last seen."""
        ...

    def job_batch(self, kind: str, items: int, waited: float) -> None:
        """A worker took ``items`` items; the oldest had waited ``waited`` seconds."""
        ...

    def job_items(self, kind: str, outcome: str, count: int) -> None:
        """Items that ended ``done``, ``dead`` or went back to ``retry``."""
        ...

    def embed_batch(self, lane: str, texts: int, waited: float) -> None:
        """The batcher ran ``texts`` texts of calls that had waited up to ``waited`` s."""
        ...


class MetricsReader(Protocol):
    """Reads back what the server measured, every worker added up."""

    def totals(self) -> Totals: ...


class NullTelemetry:
    """Telemetry that records nothing (unit tests, the CLI)."""

    def embedding(self, seconds: float, texts: int) -> None:
        return None

    def search(self, seconds: float, hits: int) -> None:
        return None

    def memories(self, count: int) -> None:
        return None

    def cache_level(self, level: str, outcome: str) -> None:
        return None

    def storage_event(self, kind: str, fields: dict[str, Any]) -> None:
        return None

    def cached_search(self, outcome: str, seconds: float) -> None:
        return None

    def cache_level_seconds(self, level: str, seconds: float) -> None:
        return None

    def store_operation(self, operation: str, seconds: float, outcome: str) -> None:
        return None

    def gauge(self, name: str, labels: tuple[str, ...], value: float) -> None:
        return None

    def census(self, census: Census) -> None:
        return None

    def totals(self) -> Totals:
        return Totals(datetime.now(UTC), 0, 0, 0, (), 0.0, 0)

    def backup(self, outcome: str, seconds: float, stored_bytes: int, memories: int) -> None:
        return None

    def job_pool(self, kind: str, workers: int, waiting: int) -> None:
        return None

    def job_batch(self, kind: str, items: int, waited: float) -> None:
        return None

    def job_items(self, kind: str, outcome: str, count: int) -> None:
        return None

    def embed_batch(self, lane: str, texts: int, waited: float) -> None:
        return None
