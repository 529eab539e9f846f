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
        ``l1`` (what), ``queue`` and ``queue_max`` (queue)."""
        ...

    def census(self, census: Census) -> None:
        """The last count of users, disk and the largest tenants."""
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

    def store_operation(self, operation: str, seconds: float, outcome: str) -> None:
        return None

    def gauge(self, name: str, labels: tuple[str, ...], value: float) -> None:
        return None

    def census(self, census: Census) -> None:
        return None

    def totals(self) -> Totals:
        return Totals(datetime.now(UTC), 0, 0, 0, (), 0.0, 0)
