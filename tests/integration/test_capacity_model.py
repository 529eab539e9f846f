"""The capacity model against a real server: RAM and disk per memory at 50k memories.

A quality check of the model, not a timing: a real ``membank serve`` on the
embedded store is loaded with 50,000 memories (384-d client vectors over 500
users, batches of 1,000, the bodies ``membank capacity calibrate`` uses), and
what its RSS and data folder grew by per memory must be what the model says.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from membank_cli._local_server import rss_bytes
from membank_cli.capacity.calibrate import data_dir_bytes, load
from membank_cli.capacity.model import MemoryModel
from tests.support.server import AUTH, ServerProcess

N = 50_000
#: The issue's bound for RAM a memory.
RAM_TOLERANCE = 0.25
#: Disk is steadier than RSS (no allocator in it): a tighter bound.
DISK_TOLERANCE = 0.15


def _settled_rss(pid: int) -> int:
    # The writer's last group and the allocator settle within a second or two.
    time.sleep(3)
    rss = rss_bytes(pid)
    assert rss is not None
    return rss


def test_model_ram_and_disk_per_memory_match_a_real_server_at_50k(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    try:
        assert server.proc is not None
        pid = server.proc.pid
        rss0, disk0 = _settled_rss(pid), data_dir_bytes(server.data_dir)
        asyncio.run(load(server.url, AUTH, 0, N, users=500, dim=384))
        with server.client() as http:
            assert http.get("/v1/collection").json()["live_memories"] == N
        rss1, disk1 = _settled_rss(pid), data_dir_bytes(server.data_dir)
    finally:
        server.stop()
    model = MemoryModel(backend="edge", dimension=384)
    measured_ram = (rss1 - rss0) / N
    predicted_ram = (model.ram_bytes(N) - model.process_bytes) / N
    measured_disk = (disk1 - disk0) / N
    predicted_disk = model.disk_bytes(N) / N
    report = (
        f"RSS {rss0 / 2**20:.0f} -> {rss1 / 2**20:.0f} MiB: {measured_ram:,.0f} B a memory, "
        f"model {predicted_ram:,.0f}; disk {measured_disk:,.0f} B a memory, "
        f"model {predicted_disk:,.0f}"
    )
    print(report)
    assert predicted_ram == pytest.approx(measured_ram, rel=RAM_TOLERANCE), report
    assert predicted_disk == pytest.approx(measured_disk, rel=DISK_TOLERANCE), report
    # The fixed part too: what the model takes for a server that holds nothing.
    assert model.process_bytes == pytest.approx(rss0, rel=RAM_TOLERANCE), report
