"""What a backup holds of writes made while it runs: each memory whole or not at all.

A writer keeps going through the store while the backup reads it in small pages:
each write either adds a memory or changes one that existed before (each memory
touched once, so every write is told apart). The backup is restored into a scratch
store and read back.

- PostgreSQL reads one REPEATABLE READ snapshot, which ``pg_dump`` shares: the
  writes the backup holds are exactly the first k the writer made (a prefix), each
  whole, and the dump's memory table holds as many rows as the backup.
- Edge has no snapshot: every memory is in the backup as it was before its write or
  as that write left it (record and history together), never a mixture, and every
  memory written before the backup began is in it.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
from pathlib import Path
from uuid import UUID

from membank_server.archive.local import LocalTarget
from membank_server.domain.model import MemoryRecord
from membank_server.domain.ports import MemoryStore
from membank_server.pg import PgDump
from membank_server.services._backup_extras import BackupExtras
from membank_server.storage.edge import EdgeStore
from membank_server.storage.pgvector import PgVectorStore
from tests.support.backup_data import float32, make_service, new_memory, snapshot, update, workload

__all__: list[str] = []

DIM = 8
BEFORE = 1500
#: Writes made before the backup begins.
EARLY = 20


async def _write_during(
    store: MemoryStore,
    before: dict[UUID, MemoryRecord],
    backup: asyncio.Future[object],
    made: list[MemoryRecord],
    early: asyncio.Event,
) -> None:
    """Write until ``backup`` is done, each write acknowledged into ``made`` in order."""
    rng = random.Random(11)
    olds = iter(sorted(before.values(), key=lambda r: str(r.memory.id)))
    n = 1_000_000
    while not backup.done():
        n += 1
        fresh = n % 2
        r = new_memory(rng, f"user-{n % 30:04d}", DIM, n) if fresh else update(next(olds), rng, DIM)
        await store.upsert([r])
        made.append(r)
        if len(made) >= EARLY:
            early.set()
        await asyncio.sleep(0)


async def _backup_while_writing(
    store: MemoryStore, tmp_path: Path, extras: BackupExtras | None = None
) -> tuple[dict[UUID, MemoryRecord], list[MemoryRecord], dict[UUID, MemoryRecord], str]:
    await workload(store, memories=BEFORE, users=30, dim=DIM, seed=5)
    before = float32(await snapshot(store))

    def target() -> LocalTarget:
        return LocalTarget(tmp_path / "backups")

    service = make_service(store, target, dim=DIM, extras=extras, page_size=50)
    started: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    made: list[MemoryRecord] = []
    early = asyncio.Event()
    writer = asyncio.ensure_future(_write_during(store, before, started, made, early))
    await early.wait()  # EARLY writes are acknowledged before the backup begins
    try:
        report = await service.run()
    finally:
        started.set_result(None)
        await writer
    writes = [float32({w.memory.id: w})[w.memory.id] for w in made]
    scratch = EdgeStore(tmp_path / "scratch", dimension=DIM)
    await scratch.start()
    try:
        await make_service(scratch, target, dim=DIM).restore(report.manifest.id)
        held = await snapshot(scratch)
    finally:
        await scratch.aclose()
    return before, writes, held, report.manifest.id


def _stdout(*args: str | Path) -> str:
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout


def _whole(held: MemoryRecord | None, old: MemoryRecord | None, new: MemoryRecord) -> str:
    """Which state of a written memory the backup holds: "new", "old" or "torn"."""
    if held == new:
        return "new"
    if held == old:  # None: a memory added by this write, not in the backup
        return "old"
    return "torn"


async def test_postgres_snapshot_holds_a_prefix_of_the_writes(
    tmp_path: Path, pg_dsn: str, pg_schema: str
) -> None:
    store = PgVectorStore(pg_dsn, dimension=DIM, schema=pg_schema)
    await store.start()
    dump = PgDump(pg_dsn, [pg_schema], bin_dir=os.environ.get("MBTEST_PG_BIN"))
    try:
        before, writes, held, backup_id = await _backup_while_writing(
            store, tmp_path, BackupExtras(dump=dump)
        )
    finally:
        await store.aclose()
    states = [_whole(held.get(w.memory.id), before.get(w.memory.id), w) for w in writes]
    assert "torn" not in states
    k = states.count("new")
    assert states == ["new"] * k + ["old"] * (len(writes) - k), states
    assert EARLY <= k < len(writes)  # the backup began while the writer was busy
    untouched = {i: r for i, r in before.items() if i not in {w.memory.id for w in writes}}
    assert {i: held[i] for i in untouched} == untouched

    # The native dump reads the same snapshot: as many memory rows as the backup holds.
    from membank_server.archive.repository import ArchiveRepository

    repo = ArchiveRepository(LocalTarget(tmp_path / "backups"), None)
    reader = await repo.reader(backup_id)
    dumped = tmp_path / "membank.dump"
    dumped.write_bytes(b"".join([c async for c in reader.blob("pg_dump")]))
    await repo.aclose()
    pg_restore = Path(os.environ["MBTEST_PG_BIN"]) / "pg_restore"
    listed = await asyncio.to_thread(_stdout, pg_restore, "--list", dumped)
    assert f"TABLE DATA {pg_schema} memories " in listed
    sql = await asyncio.to_thread(
        _stdout, pg_restore, "--data-only", "--table=memories", "-f", "-", dumped
    )
    copy = sql.split(f"COPY {pg_schema}.memories ", 1)[1].split("\n\\.\n", 1)[0]
    assert len(copy.splitlines()) - 1 == len(held)


async def test_edge_holds_each_memory_whole(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "edge", dimension=DIM)
    await store.start()
    try:
        before, writes, held, _ = await _backup_while_writing(store, tmp_path)
    finally:
        await store.aclose()
    states = [_whole(held.get(w.memory.id), before.get(w.memory.id), w) for w in writes]
    assert "torn" not in states
    assert "new" in states and "old" in states  # writes landed on both sides of the scan
    assert states[:EARLY] == ["new"] * EARLY  # written before the backup began
    untouched = {i: r for i, r in before.items() if i not in {w.memory.id for w in writes}}
    assert {i: held[i] for i in untouched} == untouched
