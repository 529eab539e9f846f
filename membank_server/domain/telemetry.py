"""The port through which services report what they measure."""

from __future__ import annotations

from typing import Protocol

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


class NullTelemetry:
    """Telemetry that records nothing (unit tests, the CLI)."""

    def embedding(self, seconds: float, texts: int) -> None:
        return None

    def search(self, seconds: float, hits: int) -> None:
        return None

    def memories(self, count: int) -> None:
        return None
