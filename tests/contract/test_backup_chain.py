"""Incremental backups: a full one and three incrementals, with updates, deletes, new
memories and an erased user between them, restore to the latest state exactly; a deep
verify restores the chain into a scratch store and compares it; prune keeps a chain
whole; a corrupted part is named by verify and a restore writes nothing."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from membank_server.archive.local import LocalTarget
from membank_server.domain.errors import BackupCorrupt
from membank_server.services.backup import Retention
from membank_server.storage.edge import EdgeStore
from tests.support.backup_data import float32, make_service, new_memory, snapshot, update, workload

__all__: list[str] = []

DIM = 8


async def test_full_and_three_incrementals_restore_the_latest_state(tmp_path: Path) -> None:
    def target() -> LocalTarget:
        return LocalTarget(tmp_path / "backups")

    store = EdgeStore(tmp_path / "edge", dimension=DIM)
    await store.start()
    rng = random.Random(3)
    try:
        made = await workload(store, memories=600, users=12, dim=DIM)
        service = make_service(store, target, dim=DIM, scratch_root=tmp_path)
        full = await service.run()
        chain = [full.manifest.id]
        for step in range(3):
            live = [r for r in made if r.deleted_at is None][step * 40 : step * 40 + 40]
            changed = [update(r, rng, DIM, delete=i % 4 == 0) for i, r in enumerate(live)]
            fresh = [new_memory(rng, f"user-{step:04d}", DIM, 10_000 + step * 100 + i)
                     for i in range(25)]  # fmt: skip
            await store.upsert([*changed, *fresh])
            made = [*made, *fresh]
            made = [next((c for c in changed if c.memory.id == r.memory.id), r) for r in made]
            if step == 1:
                await store.delete_user("user-0011")
                made = [r for r in made if r.memory.user_id != "user-0011"]
            inc = await service.run(incremental=True)
            assert inc.manifest.kind == "incremental" and inc.manifest.parent == chain[-1]
            assert inc.records < 200  # only what changed
            chain.append(inc.manifest.id)
        latest = float32(await snapshot(store))
        assert not any(r.memory.user_id == "user-0011" for r in latest.values())
        deep = await service.verify(chain[-1], deep=True)
        assert deep.chain == tuple(chain) and not deep.problems, deep.problems
    finally:
        await store.aclose()

    again = EdgeStore(tmp_path / "again", dimension=DIM)
    await again.start()
    try:
        restored = await make_service(again, target, dim=DIM).restore(chain[-1])
        assert restored.chain == tuple(chain)
        assert await snapshot(again) == latest
    finally:
        await again.aclose()

    # Prune by age: only the newest must stay, but it needs its whole chain.
    later = datetime.now(UTC) + timedelta(days=400)
    plan = await make_service(None, target, dim=DIM).prune(Retention(keep_last=1), now=later)
    assert {b.id for b in plan.keep} == set(chain) and not plan.delete

    # A flipped byte in the full backup's first memories part: named, and nothing written.
    part = next((tmp_path / "backups" / chain[0]).glob("memories-000000*"))
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0x40
    part.write_bytes(bytes(data))
    with pytest.raises(BackupCorrupt, match="memories-000000"):
        await make_service(None, target, dim=DIM).verify(chain[-1])
    empty = EdgeStore(tmp_path / "empty", dimension=DIM)
    await empty.start()
    try:
        with pytest.raises(BackupCorrupt):
            await make_service(empty, target, dim=DIM).restore(chain[-1])
        assert await empty.count() == 0
    finally:
        await empty.aclose()
