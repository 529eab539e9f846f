"""A backup restores what was written, on every backend, through the real SeaweedFS.

20,000 memories over 200 users with updates and deletes (histories of one to four
events, tombstones), client vectors: backed up to S3, the store dropped, restored into
a new one at the same place: every record, version, timestamp and history entry is
back, and a fixed set of queries finds the same ten nearest memories. Then across
backends: Edge to pgvector and back, and one user alone.

qdrant-client's local mode, which stands in for a Qdrant server here, is pure Python
(5,000 writes take it half a minute, and it warns past 20,000 points): it gets 1,000
memories over 20 users. It also keeps vectors as float64, normalised again on every
write, where a Qdrant server (like Edge and pgvector) keeps float32, which is what a
backup holds: its vectors come back equal to float32 precision, not bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from uuid import uuid4

import pytest

from membank_server.archive.s3 import S3Target
from membank_server.domain.model import MemoryRecord
from membank_server.domain.ports import MemoryStore
from membank_server.domain.storage import HybridPolicy, WriteMode
from membank_server.services.backup import RestorePlan
from membank_server.storage.edge import EdgeStore
from membank_server.storage.hybrid import HybridStore
from membank_server.storage.pgvector import PgVectorStore
from membank_server.storage.qdrant import QdrantStore
from tests.support.backup import s3_target
from tests.support.backup_data import float32, make_service, queries, snapshot, top10, workload
from tests.support.seaweedfs import S3Service

__all__: list[str] = []

DIM = 16
Factory = Callable[[], MemoryStore]


#: Memories and users per backend (see the module docs for qdrant).
SIZES = {"edge": (20_000, 200), "qdrant": (1_000, 20), "pgvector": (20_000, 200)}


@pytest.fixture(params=["edge", "qdrant", "pgvector", "hybrid"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Factory, str, int, int]:
    """Makes a store of this backend; every call opens the same folder or schema."""
    kind: str = request.param
    dsn = schema = ""
    if kind in ("pgvector", "hybrid"):
        dsn = request.getfixturevalue("pg_dsn")
        schema = request.getfixturevalue("pg_schema")

    def make() -> MemoryStore:
        if kind == "edge":
            return EdgeStore(tmp_path / "edge", dimension=DIM)
        if kind == "qdrant":
            return QdrantStore(collection="memories", dimension=DIM, path=str(tmp_path / "q"))
        pg = PgVectorStore(dsn, dimension=DIM, schema=schema)
        if kind == "pgvector":
            return pg
        edge = EdgeStore(tmp_path / "edge", dimension=DIM)
        return HybridStore(pg, edge, HybridPolicy(WriteMode.BOTH))

    return (make, kind, *SIZES.get(kind, (20_000, 200)))


def same(a: MemoryRecord, b: MemoryRecord, *, exact: bool) -> bool:
    if exact:
        return a == b
    if len(a.vector) != len(b.vector):
        return False
    pairs = zip(a.vector, b.vector, strict=True)
    close = all(math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-7) for x, y in pairs)
    return close and replace(a, vector=b.vector) == b


async def test_round_trip_through_s3(backend: tuple[Factory, str, int, int], s3: S3Service) -> None:
    make, kind, memories, users = backend
    store = make()
    await store.start()
    await workload(store, memories=memories, users=users, dim=DIM)
    before = float32(await snapshot(store))
    asked = queries(DIM, [f"user-{u:04d}" for u in range(0, users, max(1, users // 20))])
    found = await top10(store, asked)
    prefix = f"roundtrip/{uuid4().hex}"

    def target() -> S3Target:
        return s3_target(s3, prefix)

    report = await make_service(store, target, dim=DIM).run()
    assert report.records == len(before) == memories
    assert report.users == users
    await store.drop()
    await store.aclose()

    wiped = make()
    await wiped.start()
    try:
        assert await snapshot(wiped) == {}
        restored = await make_service(wiped, target, dim=DIM).restore(report.manifest.id)
        assert restored.records == memories
        after = await snapshot(wiped)
        assert after.keys() == before.keys()
        differing = [i for i in before if not same(after[i], before[i], exact=kind != "qdrant")]
        assert not differing, (before[differing[0]], after[differing[0]])
        assert sum(len(r.history) for r in after.values()) > 1.25 * memories  # not stubs
        assert await top10(wiped, asked) == found
    finally:
        await wiped.aclose()


async def test_edge_to_pgvector_and_back(tmp_path: Path, pg_dsn: str, pg_schema: str) -> None:
    """Any backup restores into any backend: the migration path to a cluster and back."""
    from membank_server.archive.local import LocalTarget

    def target() -> LocalTarget:
        return LocalTarget(tmp_path / "backups")

    edge = EdgeStore(tmp_path / "edge", dimension=DIM)
    pg = PgVectorStore(pg_dsn, dimension=DIM, schema=pg_schema)
    back = EdgeStore(tmp_path / "edge-again", dimension=DIM)
    alone = EdgeStore(tmp_path / "one-user", dimension=DIM)
    for s in (edge, pg, back, alone):
        await s.start()
    try:
        await workload(edge, memories=3000, users=50, dim=DIM, seed=3)
        before = await snapshot(edge)
        asked = queries(DIM, [f"user-{u:04d}" for u in range(50)])
        found = await top10(edge, asked)
        first = await make_service(edge, target, dim=DIM).run()
        await make_service(pg, target, dim=DIM).restore(first.manifest.id)
        assert await snapshot(pg) == before
        assert await top10(pg, asked) == found

        second = await make_service(pg, target, dim=DIM).run()
        assert second.manifest.source.backend == "pgvector"
        assert second.manifest.source.settings["snapshot"] is True
        await make_service(back, target, dim=DIM).restore(second.manifest.id)
        assert await snapshot(back) == before
        assert await top10(back, asked) == found

        one = "user-0007"
        done = await make_service(alone, target, dim=DIM).restore(
            second.manifest.id, plan=RestorePlan(user=one)
        )
        theirs = {i: r for i, r in before.items() if r.memory.user_id == one}
        assert done.records == len(theirs) > 0
        assert await snapshot(alone) == theirs
        assert await alone.count() == await alone.count(one)
    finally:
        for s in (edge, pg, back, alone):
            await s.aclose()
