"""Users, disk and the largest tenants as gauges: bounded, pseudonymised, right across workers.

The sampler counts them every ``observe.census_seconds`` (a scan of an index) and
publishes the result here. With several workers the last census is written to a
file in the shared metrics folder, and the collector reads it at scrape time, so
every worker answers the same figures and a tenant that left the top list leaves
the metrics (a gauge per tenant in the multiprocess files would linger).

Tenants appear only as pseudonyms (``t-`` and 12 hex digits: an HMAC of the user
id under a secret the history store keeps), never as their user id: a metric
system is read by more people than the data is, and a user id may be an e-mail
address. The mapping back, for the operator, is ``GET /v1/admin/tenants``.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from membank_server.domain.observe import Census, TenantFigures

__all__ = ["CensusCollector", "publish_census"]

_FILE = "membank-census.json"
_lock = threading.Lock()
_last: Census | None = None


def _path() -> Path | None:
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Path(folder) / _FILE if folder else None


def publish_census(census: Census) -> None:
    """Make ``census`` what the gauges show (in every worker)."""
    global _last
    with _lock:
        _last = census
    path = _path()
    if path is not None:
        data = {
            "users": census.users,
            "disk_bytes": census.disk_bytes,
            "tenants": [[t.tenant, t.memories, t.stored_bytes] for t in census.tenants],
        }
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(path)


def _current() -> Census | None:
    path = _path()
    if path is None:
        with _lock:
            return _last
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return Census(
        int(data["users"]),
        int(data["disk_bytes"]),
        tuple(TenantFigures(str(t), int(m), int(b)) for t, m, b in data["tenants"]),
    )


class CensusCollector(Collector):
    """``membank_users``, ``membank_disk_bytes`` and ``membank_tenant_*`` of the last census."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        census = _current()
        if census is None:
            return
        yield GaugeMetricFamily(
            "membank_users", "Users with at least one live memory", value=census.users
        )
        yield GaugeMetricFamily(
            "membank_disk_bytes", "Bytes the store uses on disk", value=census.disk_bytes
        )
        memories = GaugeMetricFamily(
            "membank_tenant_memories",
            "Live memories of the largest tenants (pseudonyms)",
            labels=["tenant"],
        )
        stored = GaugeMetricFamily(
            "membank_tenant_bytes",
            "Content and metadata bytes of the largest tenants (pseudonyms)",
            labels=["tenant"],
        )
        for t in census.tenants:
            memories.add_metric([t.tenant], t.memories)
            stored.add_metric([t.tenant], t.stored_bytes)
        yield memories
        yield stored
