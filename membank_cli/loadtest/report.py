"""Locust's CSV files read into a run summary: one row per endpoint and the aggregate.

``<prefix>_stats.csv`` gives counts, rates and percentiles (whole milliseconds, as
Locust records them); ``<prefix>_failures.csv`` names each failure, which tells
an unavailable answer (``HTTP 5xx``, ``no answer``) from a refused one (4xx).
"""

from __future__ import annotations

import csv
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from membank_server.domain.errors import MembankError

__all__ = ["EndpointStats", "ReportError", "Summary", "read_summary", "summary_dict"]

_UNAVAILABLE = re.compile(r"HTTP 5\d\d|no answer")


class ReportError(MembankError):
    """Locust's result files are missing or not what Locust writes."""


@dataclass(frozen=True)
class EndpointStats:
    name: str
    requests: int
    failures: int
    #: Failures that mean the service did not answer: 5xx, refused or dropped connections.
    unavailable: int
    rps: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0

    @property
    def availability(self) -> float:
        return 1 - self.unavailable / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class Summary:
    endpoints: tuple[EndpointStats, ...]
    total: EndpointStats
    #: (endpoint, error, occurrences) as Locust recorded them.
    failures: tuple[tuple[str, str, int], ...] = ()

    def endpoint(self, name: str) -> EndpointStats | None:
        return next((e for e in self.endpoints if e.name == name), None)


def _number(row: dict[str, str], column: str) -> float | None:
    value = row.get(column, "")
    if value in ("", "N/A"):
        return None
    return float(value)


def _rows(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="") as fh:
            return list(csv.DictReader(fh))
    except OSError as exc:
        raise ReportError(f"cannot read Locust's results: {exc}") from exc


def read_summary(prefix: Path) -> Summary:
    """The summary of the run whose files start with ``prefix`` (Locust's ``--csv``)."""
    stats = _rows(Path(f"{prefix}_stats.csv"))
    failure_rows = _rows(Path(f"{prefix}_failures.csv"))
    failures = tuple(
        (r["Name"], r["Error"], int(r["Occurrences"]))
        for r in failure_rows
        if r.get("Occurrences", "").isdigit()
    )
    unavailable: dict[str, int] = {}
    for name, error, count in failures:
        if _UNAVAILABLE.search(error):
            unavailable[name] = unavailable.get(name, 0) + count
    entries = []
    total: EndpointStats | None = None
    for row in stats:
        try:
            name = row["Name"]
            entry = EndpointStats(
                name=name,
                requests=int(row["Request Count"]),
                failures=int(row["Failure Count"]),
                unavailable=(
                    sum(unavailable.values()) if name == "Aggregated" else unavailable.get(name, 0)
                ),
                rps=float(row["Requests/s"]),
                p50_ms=_number(row, "50%"),
                p95_ms=_number(row, "95%"),
                p99_ms=_number(row, "99%"),
                max_ms=_number(row, "Max Response Time"),
            )
        except (KeyError, ValueError) as exc:
            raise ReportError(f"{prefix}_stats.csv is not Locust's stats file: {exc}") from exc
        if name == "Aggregated":
            total = entry
        else:
            entries.append(entry)
    if total is None:
        raise ReportError(f"{prefix}_stats.csv has no Aggregated row: the run did not finish")
    return Summary(tuple(entries), total, failures)


def _endpoint_dict(e: EndpointStats) -> dict[str, Any]:
    return asdict(e) | {
        "error_rate": round(e.error_rate, 6),
        "availability": round(e.availability, 6),
    }


def summary_dict(summary: Summary) -> dict[str, Any]:
    """The summary as JSON-ready data (the run's ``summary.json`` holds this and more)."""
    return {
        "total": _endpoint_dict(summary.total),
        "endpoints": [_endpoint_dict(e) for e in summary.endpoints],
        "failures": [{"endpoint": n, "error": e, "count": c} for n, e, c in summary.failures],
    }
