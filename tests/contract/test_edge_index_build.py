"""The embedded store builds its HNSW index in a child process while it serves.

A tenant large enough for HNSW (low indexing thresholds, small vectors), a reader
searching and counting throughout the build, a writer adding, updating and deleting
throughout it: every search finds the probe's own point, every count is right, and
after the switch (and after a restart) every acknowledged write is there and no
delete came back.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import pytest

from membank_server.domain.errors import StorageUnavailable
from membank_server.domain.model import MemoryRecord, VectorQuery
from membank_server.lexical import SnowballAnalyzer
from membank_server.storage import _edge_build
from membank_server.storage._edge_build import BuildReport
from membank_server.storage._edge_generations import POINTER, live_folder
from membank_server.storage.edge import EdgeStore

__all__: list[str] = []

Records = Callable[..., MemoryRecord]
DIM = 16
BIG = 3000


def _unit(rng: random.Random) -> list[float]:
    raw = [rng.gauss(0.0, 1.0) for _ in range(DIM)]
    norm = math.sqrt(sum(x * x for x in raw))
    return [x / norm for x in raw]


def _store(path: Path) -> EdgeStore:
    # 64-byte vectors: 3,000 points are 190 KB, past both thresholds, so the build
    # makes an HNSW graph and the big tenant's searches go through it.
    return EdgeStore(
        path,
        dimension=DIM,
        full_scan_threshold=20,
        indexing_threshold_kb=50,
        flush_interval=0.05,
    )


async def _search_top(store: EdgeStore, user: str, vector: list[float]) -> UUID | None:
    hits = await store.search(VectorQuery(user, vector, limit=1, now=datetime.now(UTC)))
    return hits[0].memory.id if hits else None


async def test_searches_and_writes_during_an_index_build(
    tmp_path: Path, new_record: Records
) -> None:
    rng = random.Random(7)
    big = [new_record("big", _unit(rng), content=f"big fact zebra{i}") for i in range(BIG)]
    probes = big[::600]
    doomed = [new_record("doomed", _unit(rng)) for _ in range(20)]
    store = _store(tmp_path / "memories")
    await store.start()
    for start in range(0, BIG, 500):
        await store.upsert(big[start : start + 500])
    await store.upsert(doomed)
    before = await store.info()

    acked: dict[UUID, MemoryRecord] = {}
    erased: set[UUID] = set()
    problems: list[str] = []

    async def write_throughout(build: asyncio.Task[BuildReport]) -> None:
        n = 0
        while not build.done():
            record = new_record("writer", _unit(rng), content=f"written during the build {n}")
            await store.upsert([record])
            acked[record.memory.id] = record
            if n % 5 == 4:  # a hard delete of an earlier write
                gone = list(acked)[-3]
                await store.discard([gone])
                erased.add(gone)
                del acked[gone]
            if n == 10:
                await store.delete_user("doomed")
            if n == 12:  # a soft delete (a tombstone) of an earlier write
                gone = next(iter(acked))
                tombstone = dataclasses.replace(acked.pop(gone), deleted_at=datetime.now(UTC))
                await store.upsert([tombstone])
            n += 1
            await asyncio.sleep(0.01)  # room for the build's own steps

    async def read_throughout(build: asyncio.Task[BuildReport]) -> int:
        rounds = 0
        while not build.done():
            for probe in probes:
                top = await _search_top(store, "big", probe.vector)
                if top != probe.memory.id:
                    problems.append(f"round {rounds}: probe {probe.memory.id} found {top}")
            if (count := await store.count("big")) != BIG:
                problems.append(f"round {rounds}: big counted {count}")
            rounds += 1
            await asyncio.sleep(0.01)
        return rounds

    build = asyncio.create_task(store.build_index())
    _, rounds, report = await asyncio.gather(write_throughout(build), read_throughout(build), build)
    try:
        assert not problems, problems[:5]
        assert rounds > 0
        assert report.changed
        assert report.replayed > 0, "the writes must overlap the build"
        after = await store.info()
        # Sparse (lexical) vectors count as indexed before and after; the dense ones
        # of the big tenant are indexed now.
        assert after.indexed_vectors - before.indexed_vectors >= BIG
        live = live_folder(store.path)
        assert live.name.startswith("gen-")
        assert not (store.path / "edge_config.json").exists(), "the old generation is gone"
        await _check(store, probes, acked, erased)
    finally:
        await store.aclose()

    reopened = _store(tmp_path / "memories")
    await reopened.start()
    try:
        assert (reopened.path / POINTER).exists()
        await _check(reopened, probes, acked, erased)
        written = next(iter(acked.values()))
        history = await reopened.history("writer", written.memory.id, all_versions=True)
        assert history == written.history
        terms = SnowballAnalyzer().terms("zebra42")
        lexical = await reopened.search_lexical(
            VectorQuery("big", [], limit=1, now=datetime.now(UTC), terms=terms)
        )
        assert [h.memory.id for h in lexical] == [big[42].memory.id]
    finally:
        await reopened.aclose()


async def _check(
    store: EdgeStore,
    probes: list[MemoryRecord],
    acked: dict[UUID, MemoryRecord],
    erased: set[UUID],
) -> None:
    assert await store.count("big") == BIG
    for probe in probes:
        assert await _search_top(store, "big", probe.vector) == probe.memory.id
    got = await store.get("writer", list(acked))
    assert {i: r.memory for i, r in got.items()} == {i: r.memory for i, r in acked.items()}
    assert await store.count("writer") == len(acked)
    assert not await store.get("writer", list(erased)), "a delete made during the build came back"
    assert await store.count("doomed") == 0


async def test_a_second_build_builds_on_the_first(tmp_path: Path, new_record: Records) -> None:
    rng = random.Random(3)
    store = _store(tmp_path / "memories")
    await store.start()
    try:
        records = [new_record("big", _unit(rng)) for _ in range(BIG)]
        await store.upsert(records[:2000])
        await store.build_index()
        assert live_folder(store.path).name == "gen-000001"
        await store.upsert(records[2000:])
        await store.build_index()
        assert live_folder(store.path).name == "gen-000002"
        generations = sorted(p.name for p in store.path.iterdir() if p.name.startswith("gen-"))
        assert generations == ["gen-000002"]
        assert await store.count("big") == BIG
        assert await _search_top(store, "big", records[2500].vector) == records[2500].memory.id
    finally:
        await store.aclose()


async def test_what_a_build_left_is_removed_and_the_pointer_decides(
    tmp_path: Path, new_record: Records
) -> None:
    root = tmp_path / "memories"
    store = _store(root)
    await store.start()
    kept = [new_record("alice", _unit(random.Random(i))) for i in range(5)]
    await store.upsert(kept)
    await store.aclose()
    # A build killed mid-way: its copy, and a pointer half written.
    (root / "gen-000001" / "segments").mkdir(parents=True)
    (root / "GENERATION.tmp").write_text("gen-000001")
    again = _store(root)
    await again.start()
    try:
        assert not (root / "gen-000001").exists()
        assert not (root / "GENERATION.tmp").exists()
        assert not (root / "GENERATION").exists()
        assert len(await again.get("alice", [r.memory.id for r in kept])) == 5
    finally:
        await again.aclose()

    (root / "GENERATION").write_text("gen-000009\n")
    lost = _store(root)
    with pytest.raises(StorageUnavailable, match="gen-000009, which holds no shard"):
        await lost.start()
    await lost.aclose()
    assert (root / "edge_config.json").exists(), "nothing is removed when the pointer is wrong"


async def test_a_build_starts_by_itself_past_the_threshold(
    tmp_path: Path, new_record: Records
) -> None:
    rng = random.Random(5)
    store = EdgeStore(
        tmp_path / "memories",
        dimension=DIM,
        full_scan_threshold=20,
        indexing_threshold_kb=50,
        build_threshold=2000,
        build_check_interval=0.1,
    )
    await store.start()
    try:
        records = [new_record("big", _unit(rng)) for _ in range(BIG)]
        await store.upsert(records[:1000])
        await asyncio.sleep(0.5)
        assert store.builder.last is None, "1,000 unindexed points: below the threshold"
        await store.upsert(records[1000:])
        for _ in range(1200):  # a bounded wait for the watcher, not a timing figure
            if store.builder.last is not None:
                break
            await asyncio.sleep(0.1)
        assert store.builder.last is not None and store.builder.last.changed
        assert live_folder(store.path).name == "gen-000001"
        assert await store.count("big") == BIG
    finally:
        await store.aclose()


async def test_a_build_that_fails_while_catching_up_leaves_the_live_shard_as_it_was(
    tmp_path: Path, new_record: Records, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(11)
    store = _store(tmp_path / "memories")
    await store.start()
    try:
        records = [new_record("big", _unit(rng)) for _ in range(BIG)]
        await store.upsert(records)
        written: list[MemoryRecord] = []

        def broken(live: object, new: object, entries: list[object]) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(_edge_build, "replay", broken)
        build = asyncio.create_task(store.build_index())
        while not build.done():
            record = new_record("writer", _unit(rng))
            await store.upsert([record])
            written.append(record)
            await asyncio.sleep(0.01)
        with pytest.raises(StorageUnavailable, match="No space left"):
            await build
        assert not (store.path / POINTER).exists()
        assert not [p for p in store.path.iterdir() if p.name.startswith("gen-")]
        after = new_record("writer", _unit(rng))
        await store.upsert([after])
        written.append(after)
        assert await store.count("writer") == len(written)
        assert await store.count("big") == BIG
    finally:
        await store.aclose()
    reopened = _store(tmp_path / "memories")
    await reopened.start()
    try:
        assert await reopened.count("writer") == len(written)
    finally:
        await reopened.aclose()
