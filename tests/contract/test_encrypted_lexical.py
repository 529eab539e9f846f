"""The lexical index under EncryptedStore, read around the wrapper on every real store:
its sparse vectors (Edge, qdrant-client's local folder) and tsvector rows (PostgreSQL)
hold keyed terms only, and a rotation keeps it searchable and keys rows written in clear.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import asyncpg  # type: ignore[import-untyped]
import pytest
import qdrant_edge as qe
from qdrant_client import QdrantClient

from membank_server.domain.model import MemoryRecord, VectorQuery
from membank_server.domain.ports import MemoryStore
from membank_server.lexical import SnowballAnalyzer, term_index
from membank_server.security.crypto import add_key_to_file
from membank_server.security.encrypted_store import EncryptedStore
from membank_server.services.memories import UserLocks
from membank_server.services.rotation import DataKeyRotation
from tests.contract.encrypted import on_stores

__all__: list[str] = []

Records = Callable[..., MemoryRecord]


def _sparse_indices(tmp_path: Path) -> set[int]:
    """Every sparse index the Qdrant-family folders hold (read with the store closed)."""
    found: set[int] = set()
    if (tmp_path / "edge" / "edge_config.json").exists():
        shard = qe.EdgeShard.load(str(tmp_path / "edge"))
        points, _ = shard.scroll(qe.ScrollRequest(limit=1000, with_vector=True))
        shard.close()
        found.update(i for p in points for i in _lexical_of(p.vector))
    if (tmp_path / "qdrant").exists():
        client = QdrantClient(path=str(tmp_path / "qdrant"))
        records, _ = client.scroll("memories", limit=1000, with_vectors=True)
        client.close()
        found.update(i for r in records for i in _lexical_of(r.vector))
    return found


def _lexical_of(vector: Any) -> list[int]:
    sparse = vector.get("lexical") if isinstance(vector, dict) else None
    return list(sparse.indices) if sparse is not None else []


async def _lexemes(request: pytest.FixtureRequest) -> str:
    backend = request.node.callspec.params["open_store"]
    if backend != "pgvector" and not backend.startswith("hybrid"):
        return ""
    schema = request.getfixturevalue("pg_schema")
    conn = await asyncpg.connect(request.getfixturevalue("pg_dsn"))
    try:
        rows = await conn.fetch(f'SELECT lexemes::text AS t FROM "{schema}".memories')
    finally:
        await conn.close()
    return "\n".join(r["t"] for r in rows)


def _lexical(user_id: str, text: str) -> VectorQuery:
    return VectorQuery(user_id, [], 5, datetime.now(UTC), terms=SnowballAnalyzer().terms(text))


@on_stores
async def test_the_lexical_index_holds_no_plaintext_term(
    enc: EncryptedStore,
    inner: MemoryStore,
    new_record: Records,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    word, ctl = f"zanzibar{uuid4().hex[:10]}", f"control{uuid4().int % 10**9}"
    mine = new_record("alice", content=f"planning the {word} trip with Oksana")
    control = new_record("bob", content=f"the {ctl} voyage")
    await enc.upsert([mine])
    await inner.upsert([control])

    # Through the wrapper, its words find it; around it, the plain terms find nothing.
    found = await enc.search_lexical(_lexical("alice", f"{word} Oksana"))
    assert [h.memory for h in found] == [mine.memory]
    assert await inner.search_lexical(_lexical("alice", f"{word} Oksana trip")) == []
    assert len(await inner.search_lexical(_lexical("bob", ctl))) == 1

    # hybrid-async: the secondary has the writes once the outbox is drained.
    waiting = getattr(inner, "outbox_size", None)
    for _ in range(200):
        if waiting is None or not await waiting():
            break
        await asyncio.sleep(0.05)
    await inner.aclose()
    plain = SnowballAnalyzer().terms(mine.memory.content)
    indices, lexemes = _sparse_indices(tmp_path), await _lexemes(request)
    assert indices or lexemes, "no lexical index was read"
    if indices:
        assert term_index(ctl) in indices, "the raw read cannot see plain terms"
        assert not indices & {term_index(t) for t in plain}
    if lexemes:
        assert f"'{ctl}'" in lexemes, "the raw read cannot see plain terms"
        assert all(f"'{t}'" not in lexemes for t in plain)


@on_stores
async def test_rotation_keeps_the_lexical_index_and_keys_plain_rows(
    enc: EncryptedStore, inner: MemoryStore, new_record: Records, keys_file: Path
) -> None:
    sealed = new_record("alice", content="the Hebridean ferry leaves at dawn")
    legacy = new_record("alice", content="the Hebridean distillery tour, written in clear")
    await enc.upsert([sealed])
    await inner.upsert([legacy])
    # A row written before encryption holds plain terms: keyed queries miss it.
    before = await enc.search_lexical(_lexical("alice", "Hebridean"))
    assert [h.memory.id for h in before] == [sealed.memory.id]

    assert add_key_to_file(keys_file) == "k2"
    status = await DataKeyRotation(enc, UserLocks().hold, page_size=1).run()
    assert status.state == "done"

    after = await enc.search_lexical(_lexical("alice", "Hebridean"))
    assert {h.memory.id for h in after} == {sealed.memory.id, legacy.memory.id}
    assert await inner.search_lexical(_lexical("alice", "Hebridean distillery")) == []
