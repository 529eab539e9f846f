"""CPU, memory, files and connections of the whole server: the supervisor and its workers.

Read with psutil at the moment they are asked for (a scrape, a sample), from the
process tree: with several workers the uvicorn supervisor and every child, so
whichever worker answers, the figure is the server's, not its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psutil
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["ProcessTreeCollector", "ServerProcesses", "machine", "process_tree"]

_CGROUP_MEMORY = Path("/sys/fs/cgroup/memory.max")


def machine() -> tuple[int, int]:
    """The memory this server may use (its cgroup's limit, else the machine's) and CPUs."""
    total = psutil.virtual_memory().total
    try:
        limit = _CGROUP_MEMORY.read_text().strip()
        if limit.isdigit():
            total = min(total, int(limit))
    except OSError:
        pass
    return total, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1


def _root() -> psutil.Process:
    # Workers of `membank serve --workers N` are children of the supervisor, and only
    # they run with a shared metrics folder.
    me = psutil.Process()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        parent = me.parent()
        if parent is not None:
            return parent
    return me


class ServerProcesses:
    """The figures of the process tree, read now."""

    def __init__(self) -> None:
        root = _root()
        self.processes = [root, *root.children(recursive=True)]
        self.cpu_seconds = 0.0
        self.rss_bytes = 0
        self.open_fds = 0
        self.inbound = self.outbound = 0
        listening: set[int] = set()
        conns = []
        for p in self.processes:
            try:
                with p.oneshot():
                    t = p.cpu_times()
                    self.cpu_seconds += t.user + t.system
                    self.rss_bytes += p.memory_info().rss
                    self.open_fds += p.num_fds()
                    for c in p.net_connections(kind="tcp"):
                        if c.status == psutil.CONN_LISTEN:
                            listening.add(c.laddr.port)
                        elif c.status == psutil.CONN_ESTABLISHED:
                            conns.append(c)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue  # a worker that just exited
        for c in conns:
            if c.laddr and c.laddr.port in listening:
                self.inbound += 1
            else:
                self.outbound += 1


def process_tree() -> tuple[float, int]:
    """CPU seconds and resident bytes of the whole server now."""
    p = ServerProcesses()
    return p.cpu_seconds, p.rss_bytes


class ProcessTreeCollector(Collector):
    """``membank_process_*`` and ``membank_open_connections``, read at scrape time."""

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        p = ServerProcesses()
        yield CounterMetricFamily(
            "membank_process_cpu_seconds",
            "CPU seconds used by the server's processes (supervisor and workers)",
            value=p.cpu_seconds,
        )
        yield GaugeMetricFamily(
            "membank_process_resident_memory_bytes",
            "Resident memory of the server's processes",
            value=p.rss_bytes,
        )
        yield GaugeMetricFamily(
            "membank_process_open_fds", "Open files of the server's processes", value=p.open_fds
        )
        yield GaugeMetricFamily(
            "membank_processes",
            "Processes of the server (supervisor, workers, their helpers)",
            value=len(p.processes),
        )
        conns = GaugeMetricFamily(
            "membank_open_connections",
            "Established TCP connections: inbound to the server's ports, outbound to its stores",
            labels=["side"],
        )
        conns.add_metric(["inbound"], p.inbound)
        conns.add_metric(["outbound"], p.outbound)
        yield conns
