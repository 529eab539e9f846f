"""Rows of the history tables and back: shared by the SQLite and PostgreSQL adapters."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from membank_server.domain.capacity import SAMPLE_FIELDS, Sample
from membank_server.domain.observe import RequestWindow, TuningEvent

__all__ = [
    "TUNING_FIELDS",
    "WINDOW_FIELDS",
    "event_of",
    "event_row",
    "sample_of",
    "sample_row",
    "window_of",
    "window_row",
]

WINDOW_FIELDS = ("at", "seconds", "requests", "server_errors", "client_errors", "latency", "cpu")
TUNING_FIELDS = (
    "at", "session", "action", "tunable", "old", "new", "objective", "before", "after", "note",
)  # fmt: skip


def _when(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.fromtimestamp(float(value), UTC)


def sample_row(s: Sample, *, epoch: bool) -> tuple[Any, ...]:
    return tuple(
        (s.at.timestamp() if epoch else s.at) if f == "at" else getattr(s, f) for f in SAMPLE_FIELDS
    )


def sample_of(row: Sequence[Any]) -> Sample:
    values = dict(zip(SAMPLE_FIELDS, row, strict=True))
    values["at"] = _when(values["at"])
    return Sample(**values)


def window_row(w: RequestWindow, *, epoch: bool) -> tuple[Any, ...]:
    at = w.at.timestamp() if epoch else w.at
    return (at, w.seconds, w.requests, w.server_errors, w.client_errors,
            json.dumps(list(w.latency)), w.cpu_seconds)  # fmt: skip


def window_of(row: Sequence[Any]) -> RequestWindow:
    at, seconds, requests, s5, s4, latency, cpu = row
    return RequestWindow(
        _when(at), float(seconds), int(requests), int(s5), int(s4),
        tuple(int(n) for n in json.loads(latency)), float(cpu),
    )  # fmt: skip


def event_row(e: TuningEvent, *, epoch: bool) -> tuple[Any, ...]:
    at = e.at.timestamp() if epoch else e.at
    return (at, e.session, e.action, e.tunable, e.old, e.new, e.objective, e.before, e.after,
            e.note)  # fmt: skip


def event_of(row: Sequence[Any]) -> TuningEvent:
    values = dict(zip(TUNING_FIELDS, row, strict=True))
    values["at"] = _when(values["at"])
    return TuningEvent(**values)
