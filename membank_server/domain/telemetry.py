"""The port through which services report what they measure."""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["NullTelemetry", "Telemetry"]


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

    def job_pool(self, kind: str, workers: int, waiting: int) -> None:
        return None

    def job_batch(self, kind: str, items: int, waited: float) -> None:
        return None

    def job_items(self, kind: str, outcome: str, count: int) -> None:
        return None

    def embed_batch(self, lane: str, texts: int, waited: float) -> None:
        return None
