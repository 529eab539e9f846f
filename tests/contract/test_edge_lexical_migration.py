"""An Edge folder made before lexical search (one unnamed dense vector, no sparse one)
opens, is copied into today's layout at start, and keeps everything; a swap cut off
by a crash is finished by the next start."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import qdrant_edge as qe

import membank_server.storage.edge as edge_module
from membank_server.domain.model import MemoryRecord, VectorQuery
from membank_server.lexical import LexicalIndex, SnowballAnalyzer
from membank_server.storage import _edge_lexical, _edge_open
from membank_server.storage._edge_shard import DISTANCES
from membank_server.storage.edge import EdgeStore

__all__: list[str] = []

Records = Callable[..., MemoryRecord]
DIM = 8


def _old_config(
    dimension: int, distance: str, m: int, ef: int, threshold: int, _vectors: Any = None, **_: Any
) -> Any:
    """The shard config of membank before lexical search (edge_config.json of then: no
    quantization either)."""
    return qe.EdgeConfig(
        vectors=qe.EdgeVectorParams(
            size=dimension, distance=getattr(qe.Distance, DISTANCES[distance])
        ),
        hnsw_config=qe.HnswIndexConfig(m=m, ef_construct=ef, full_scan_threshold=threshold),
    )


async def _old_folder(
    path: Path, records: list[MemoryRecord], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Write ``records`` the way the previous EdgeStore did: dense-only points."""
    with monkeypatch.context() as m:
        m.setattr(edge_module, "shard_config", _old_config)
        m.setattr(edge_module, "point_vectors", lambda r, _i, _s: list(r.vector))
        m.setattr(_edge_open, "migrate_to_lexical", lambda *_: 0)
        old = EdgeStore(path, dimension=DIM)
        await old.start()
        await old.upsert(records)
        await old.aclose()
    assert not _edge_lexical.has_lexical(path)


def _terms(text: str) -> tuple[str, ...]:
    return SnowballAnalyzer().terms(text)


async def _check(path: Path, records: list[MemoryRecord]) -> None:
    store = EdgeStore(path, dimension=DIM)
    await store.start()
    try:
        assert _edge_lexical.has_lexical(path)
        now = datetime.now(UTC)
        live = [r for r in records if r.deleted_at is None]
        assert await store.count("alice") == len(live)
        got = await store.get("alice", [r.memory.id for r in records])
        assert {i: g.memory for i, g in got.items()} == {r.memory.id: r.memory for r in records}
        for r in records:
            assert await store.history("alice", r.memory.id) == r.history
        hits = await store.search(VectorQuery("alice", records[0].vector, 1, now))
        assert hits[0].memory.id == records[0].memory.id
        lexical = await store.search_lexical(
            VectorQuery("alice", [], 5, now, terms=_terms("fjord"))
        )
        assert [h.memory.id for h in lexical] == [records[0].memory.id]
        assert (await store.verify()).damaged == []
        assert not (path / ".lexical-next").exists() and not (path / ".lexical-old").exists()
    finally:
        await store.aclose()


@pytest.fixture
def records(new_record: Records, unit: Callable[..., list[float]]) -> list[MemoryRecord]:
    return [
        new_record("alice", unit(1), content="we sailed up the fjord at dawn", version=2),
        new_record("alice", unit(2), content="the ferry was late"),
        new_record("alice", unit(3), content="gone now", deleted_at=datetime.now(UTC)),
    ]


async def test_an_old_folder_gains_the_lexical_index_and_loses_nothing(
    tmp_path: Path, records: list[MemoryRecord], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "edge"
    await _old_folder(path, records, monkeypatch)
    await _check(path, records)
    await _check(path, records)  # a second start has nothing to do


@pytest.mark.parametrize("moved_aside", [False, True])
async def test_a_swap_cut_off_by_a_crash_is_finished_at_the_next_start(
    tmp_path: Path,
    records: list[MemoryRecord],
    monkeypatch: pytest.MonkeyPatch,
    moved_aside: bool,
) -> None:
    path = tmp_path / "edge"
    await _old_folder(path, records, monkeypatch)
    config = EdgeStore(path, dimension=DIM)._config
    nxt, old = path / ".lexical-next", path / ".lexical-old"
    # The copy finished and was marked; the crash came before (or during) the swap.
    _edge_lexical._copy(path, nxt, config, LexicalIndex())
    (nxt / "COMPLETE").write_text("copied\n")
    if moved_aside:
        old.mkdir()
        first = sorted(e.name for e in nxt.iterdir() if e.name != "COMPLETE")[0]
        (path / first).rename(old / first)
    await _check(path, records)


async def test_a_copy_cut_off_by_a_crash_starts_again(
    tmp_path: Path, records: list[MemoryRecord], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "edge"
    await _old_folder(path, records, monkeypatch)
    nxt = path / ".lexical-next"
    nxt.mkdir()
    (nxt / "segments").mkdir()  # a copy in progress, never marked complete
    await _check(path, records)
    shutil.rmtree(path)
