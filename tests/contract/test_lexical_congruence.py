"""The backends' lexical rankings agree by overlap, not equality: the Qdrant-family
stores score a sparse vector with Qdrant's IDF, PostgreSQL computes BM25 in SQL where a
row's length is its number of distinct terms (``_pg_lexical``), and ties may fall in
another order. Measured on the first conversation of the shipped retrieval suite, with
every one of its questions; the figures are printed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from membank_server.domain.model import MemoryRecord, VectorQuery
from membank_server.domain.ports import MemoryStore
from membank_server.lexical import SnowballAnalyzer
from membank_server.storage.edge import EdgeStore
from membank_server.storage.pgvector import PgVectorStore
from membank_server.storage.qdrant import QdrantStore
from tests.support.retrieval_suite import DEFAULT_ROOT, load_conversation

__all__: list[str] = []


async def test_the_backends_lexical_top_10s_overlap(
    edge: EdgeStore, pg: PgVectorStore, tmp_path: Path, new_record: Callable[..., MemoryRecord]
) -> None:
    conversation = load_conversation(DEFAULT_ROOT / "conv_01.json")
    records = [new_record("conv", content=t.text) for t in conversation.turns()]
    qdrant = QdrantStore(collection="memories", dimension=8, path=str(tmp_path / "qdrant"))
    stores: dict[str, MemoryStore] = {"edge": edge, "qdrant": qdrant, "pgvector": pg}
    for store in stores.values():
        await store.start()
        await store.upsert(records)
    analyzer, now = SnowballAnalyzer(), datetime.now(UTC)
    overlap = {"qdrant": 0.0, "pgvector": 0.0}
    first = {"qdrant": 0, "pgvector": 0}
    asked = 0
    for question in conversation.questions:
        query = VectorQuery("conv", [], 10, now, terms=analyzer.terms(question.question))
        edge_ids = [h.memory.id for h in await edge.search_lexical(query)]
        if not edge_ids:
            continue
        asked += 1
        for name in overlap:
            ids = [h.memory.id for h in await stores[name].search_lexical(query)]
            overlap[name] += len(set(ids) & set(edge_ids)) / len(edge_ids)
            first[name] += ids[:1] == edge_ids[:1]
    for store in stores.values():
        await store.aclose()
    figures = {name: (overlap[name] / asked, first[name] / asked) for name in overlap}
    print(f"lexical top-10 overlap, top-1 agreement with edge over {asked} questions: {figures}")
    assert asked >= 15
    # The same engine: every top 10 is the same set.
    assert figures["qdrant"][0] > 0.99
    # Another scoring of length: most of every top 10 is the same.
    assert figures["pgvector"][0] >= 0.9
