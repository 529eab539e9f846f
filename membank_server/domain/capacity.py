"""The metrics history record: what a server samples of itself, and what capacity planning reads.

One :class:`Sample` every N seconds, written by the server's sampler into a durable
history (PostgreSQL when configured, else SQLite under the data folder) and read
back by ``membank capacity plan`` (from that file, from the server's
``GET /v1/admin/history?since=`` endpoint, or from a Prometheus server).

The SQLite history is one table, :data:`SQLITE_SCHEMA`; ``at`` is Unix seconds
(UTC), latencies are NULL when no request was timed in the interval. The sampler
writes it and ``membank_cli.capacity.sqlite`` reads it: change both through this
constant. Over HTTP a sample is a JSON object with the same field names and
``at`` in ISO 8601 with an offset; the endpoint answers ``{"samples": [...]}``
oldest first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

__all__ = ["ADDED_COLUMNS", "SAMPLE_FIELDS", "SQLITE_SCHEMA", "HistorySource", "Sample"]


@dataclass(frozen=True, slots=True)
class Sample:
    """What one server measured of itself at one moment.

    Attributes:
        at: When, timezone-aware (UTC).
        memories: Live memories in the store.
        users: Distinct users with at least one memory.
        disk_bytes: Bytes the store uses on disk (data folder, or the schema's relations).
        rss_bytes: Resident set size of the server process.
        rps: Requests per second over the interval before ``at``.
        p95_ms: 95th percentile request latency over the interval, None with no request.
        p99_ms: 99th percentile request latency over the interval, None with no request.
        cpu_percent: CPU used by the process over the interval, 100 = one core.
        errors_per_s: 5xx answers per second over the interval.
        backend: ``storage.backend`` of the server (edge, qdrant, pgvector, hybrid).
        dimension: Vector size of the collection.
        queue_depth: Job items waiting (pending or running) in the ingestion queue.
        job_workers: Job workers running, all server workers.
    """

    at: datetime
    memories: int
    users: int
    disk_bytes: int
    rss_bytes: int
    rps: float
    p95_ms: float | None
    p99_ms: float | None
    cpu_percent: float
    errors_per_s: float
    backend: str
    dimension: int
    queue_depth: int = 0
    job_workers: int = 0


#: Field names in order: the SQLite columns and the JSON keys.
SAMPLE_FIELDS: tuple[str, ...] = tuple(Sample.__dataclass_fields__)
#: Columns added since the first schema, with their SQL type: a history written
#: before them gets them (0) when a server opens it, and reads as 0 otherwise.
ADDED_COLUMNS: dict[str, str] = {
    "queue_depth": "INTEGER NOT NULL DEFAULT 0",
    "job_workers": "INTEGER NOT NULL DEFAULT 0",
}

SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    at           REAL    NOT NULL PRIMARY KEY,  -- Unix seconds, UTC
    memories     INTEGER NOT NULL,
    users        INTEGER NOT NULL,
    disk_bytes   INTEGER NOT NULL,
    rss_bytes    INTEGER NOT NULL,
    rps          REAL    NOT NULL,
    p95_ms       REAL,
    p99_ms       REAL,
    cpu_percent  REAL    NOT NULL,
    errors_per_s REAL    NOT NULL,
    backend      TEXT    NOT NULL,
    dimension    INTEGER NOT NULL,
    queue_depth  INTEGER NOT NULL DEFAULT 0,
    job_workers  INTEGER NOT NULL DEFAULT 0
)
"""


class HistorySource(Protocol):
    """Somewhere samples can be read from: a SQLite file, a server, Prometheus, a generator."""

    #: Shown beside every figure made from this source ("simulated", a path, a URL).
    label: str
    #: What the operator should know about what was read (series missing, ...),
    #: filled by :meth:`samples`.
    notes: list[str]

    async def samples(self, since: datetime | None) -> list[Sample]:
        """Samples taken at or after ``since`` (all of them when None), oldest first."""
        ...
