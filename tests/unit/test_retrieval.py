"""Lexical analysis, fusion, the search modes over fakes, and the HTTP reranker."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import httpx
import pytest

from membank_server.domain.errors import EmbedderUnavailable, InvalidInput, NotEnabled
from membank_server.domain.model import Memory, MemoryRecord, SearchHit, VectorQuery, content_hash
from membank_server.domain.retrieval import FusionMethod, Retrieval, RetrievalChoice, SearchMode
from membank_server.embeddings.rerank import HttpReranker
from membank_server.lexical import Bm25Weights, SnowballAnalyzer, term_index
from membank_server.services.fusion import fuse, fused_ranks, recency_factor
from membank_server.services.inputs import NewMemory, RecallQuery
from membank_server.services.memories import MemoryService
from membank_server.services.search import HybridSearch, WordAnalyzer
from tests.unit.fakes import FakeEmbedder, InMemoryStore

__all__: list[str] = []

_NOW = datetime(2025, 6, 1, tzinfo=UTC)


def _memory(text: str, occurred: datetime | None = None) -> Memory:
    return Memory(uuid4(), "u", text, {}, _NOW, _NOW, 1, content_hash(text), occurred_at=occurred)


def _hits(*scored: tuple[Memory, float]) -> list[SearchHit]:
    return [SearchHit(m, s) for m, s in scored]


# -- analysis --------------------------------------------------------------------


def test_the_analyzer_folds_stems_drops_stop_words_and_keeps_names_numbers_and_dates() -> None:
    terms = SnowballAnalyzer().terms("What did Maya's brother say on May 7th, 2025-07-23 at 7:15?")
    assert terms[:2] == ("2025-07-23", "7:15")
    assert {"maya", "brother", "say", "may", "7th", "2025", "07", "23"} <= set(terms)
    assert not {"what", "did", "on", "at", "s"} & set(terms)
    assert SnowballAnalyzer().terms("running RUNS ran") == ("run", "run", "ran")
    assert SnowballAnalyzer().terms("the of and") == ()
    assert SnowballAnalyzer("german").terms("Häuser") == ("haus",)


def test_bm25_weights_saturate_term_frequency_and_normalise_length() -> None:
    w = Bm25Weights(k1=1.2, b=0.75, avg_len=4)
    once, twice = w.document(["dog", "a", "b", "c"]), w.document(["dog", "dog", "b", "c"])
    dog = term_index("dog")
    weight = dict(zip(once.indices, once.values, strict=True))[dog]
    assert weight == pytest.approx(1.0)  # tf 1 at the average length
    assert dict(zip(twice.indices, twice.values, strict=True))[dog] == pytest.approx(
        2 * 2.2 / (2 + 1.2)
    )
    query = Bm25Weights.query(["dog", "dog", "cat"])
    assert sorted(query.indices) == sorted({dog, term_index("cat")})
    assert set(query.values) == {1.0}
    assert not w.document([])


# -- fusion ----------------------------------------------------------------------


def test_rrf_adds_weighted_reciprocal_ranks_and_says_who_found_what() -> None:
    a, b, c = _memory("a"), _memory("b"), _memory("c")
    fused = fuse(
        {"dense": _hits((a, 0.9), (b, 0.8)), "lexical": _hits((b, 7.0), (c, 3.0))},
        Retrieval(fusion=FusionMethod.RRF, rrf_k=10, dense_weight=0.5),
        10,
        _NOW,
    )
    assert [h.memory for h in fused] == [b, a, c]
    assert fused[0].ranks == {"dense": 2, "lexical": 1}
    assert fused[0].score == pytest.approx(1 / 12 + 1 / 11)
    assert fused[1].ranks == {"dense": 1} and fused[2].ranks == {"lexical": 2}


def test_weighted_fusion_scales_each_ranking_to_its_candidates() -> None:
    a, b, c = _memory("a"), _memory("b"), _memory("c")
    options = Retrieval(fusion=FusionMethod.WEIGHTED, dense_weight=0.75)
    fused = fuse(
        {"dense": _hits((a, 0.9), (b, 0.5)), "lexical": _hits((b, 9.0), (c, 1.0))},
        options,
        2,
        _NOW,
    )
    # a: 0.75 * 1; b: 0.75 * 0 + 0.25 * 1; c: 0; the limit keeps two.
    assert [(h.memory, round(h.score, 6)) for h in fused] == [(a, 0.75), (b, 0.25)]


def test_recency_lowers_older_memories_by_half_lives() -> None:
    old = _memory("old", occurred=_NOW - timedelta(days=30))
    assert recency_factor(old, _NOW, 0.0, 30) == 1.0
    assert recency_factor(old, _NOW, 1.0, 30) == pytest.approx(0.5)
    assert recency_factor(old, _NOW, 0.5, 30) == pytest.approx(0.75)
    new = _memory("new", occurred=_NOW)
    options = Retrieval(fusion=FusionMethod.RRF, recency_weight=1.0, recency_half_life_days=30)
    fused = fuse({"dense": _hits((old, 0.9), (new, 0.8))}, options, 2, _NOW)
    assert [h.memory for h in fused] == [new, old]


def test_fusing_ids_ranks_as_fusing_hits() -> None:
    a, b, c, d = (_memory(x) for x in "abcd")
    rankings = {"dense": _hits((a, 0.9), (b, 0.5), (d, 0.4)), "lexical": _hits((b, 9.0), (c, 1.0))}
    for options in (Retrieval(fusion=FusionMethod.RRF, rrf_k=3), Retrieval(dense_weight=0.3)):
        hits = fuse(rankings, options, 3, _NOW)
        ids = {k: [(h.memory.id, h.score) for h in v] for k, v in rankings.items()}
        assert fused_ranks(ids, options, 3) == [(h.memory.id, h.score, h.ranks) for h in hits]


# -- modes over fakes ------------------------------------------------------------


@pytest.fixture
async def service() -> MemoryService:
    svc = MemoryService(InMemoryStore(), FakeEmbedder())
    await svc.remember_many(
        [NewMemory("u", "the door code is 4471"), NewMemory("u", "I like green tea")]
    )
    return svc


async def test_each_mode_asks_its_retrievers(service: MemoryService) -> None:
    def ask(mode: SearchMode) -> RecallQuery:
        return RecallQuery("u", "code 4471", retrieval=RetrievalChoice(mode=mode, explain=True))

    lexical = await service.search(ask(SearchMode.LEXICAL))
    assert [h.memory.content for h in lexical] == ["the door code is 4471"]
    assert lexical[0].ranks == {"lexical": 1}
    dense = await service.search(ask(SearchMode.DENSE))
    assert len(dense) == 2 and all(set(h.ranks) == {"dense"} for h in dense)
    hybrid = await service.search(ask(SearchMode.HYBRID))
    assert hybrid[0].memory.content == "the door code is 4471"
    assert hybrid[0].ranks.get("lexical") == 1
    plain = await service.search(RecallQuery("u", "code 4471"))
    assert all(h.ranks == {} for h in plain)


class _Counting(InMemoryStore):
    """Records which reads a search made; ``vanish`` is deleted as the ranks come back."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, int]] = []
        self.vanish: UUID | None = None

    async def search(self, query: VectorQuery) -> list[SearchHit]:
        self.calls.append(("search", query.limit))
        return await super().search(query)

    async def search_lexical(self, query: VectorQuery) -> list[SearchHit]:
        self.calls.append(("search_lexical", query.limit))
        return await super().search_lexical(query)

    async def rank(self, query: VectorQuery, *, lexical: bool = False) -> list[tuple[UUID, float]]:
        self.calls.append(("rank", query.limit))
        found = await (super().search_lexical if lexical else super().search)(query)
        ranked = [(h.memory.id, h.score) for h in found]
        if self.vanish in self.records:
            self.records[self.vanish] = replace(self.records[self.vanish], deleted_at=_NOW)
        return ranked

    async def get(self, user_id: str, memory_ids: Sequence[UUID]) -> dict[UUID, MemoryRecord]:
        self.calls.append(("get", len(memory_ids)))
        return await super().get(user_id, memory_ids)


async def test_hybrid_ranks_ids_and_reads_only_the_memories_it_keeps() -> None:
    store = _Counting()
    svc = MemoryService(store, FakeEmbedder())
    texts = ["the door code is 4471", "code red drill", "I like green tea", "code 12 on the lock"]
    written = [m for m, _ in await svc.remember_many([NewMemory("u", t) for t in texts])]
    search = HybridSearch(store, WordAnalyzer(), Retrieval(dense_depth=50, lexical_depth=40))
    q = search.resolve(RecallQuery("u", "code 4471", limit=2, retrieval=RetrievalChoice()))
    now = datetime.now(UTC)
    vector = (await FakeEmbedder().embed(["code 4471"]))[0]
    hits = await search.run(q, vector, now)
    assert store.calls == [("rank", 50), ("rank", 40), ("get", 2)]
    assert hits[0].memory == written[0] and len(hits) == 2

    # The best one, deleted between the ranks and the read, is left out.
    store.vanish = written[0].id
    after = await search.run(q, vector, now)
    assert [h.memory for h in after] == [h.memory for h in hits[1:]]

    store.calls.clear()
    q = search.resolve(RecallQuery("u", "code", retrieval=RetrievalChoice(recency_weight=0.5)))
    assert len(await search.run(q, vector, now)) == 3  # the four but the deleted one
    assert store.calls == [("search", 50), ("search_lexical", 40)]


def test_resolve_fills_defaults_and_refuses_what_cannot_run() -> None:
    search = HybridSearch(InMemoryStore(), WordAnalyzer(), Retrieval(rrf_k=7))
    resolved = search.resolve(RecallQuery("u", "x", retrieval=RetrievalChoice(dense_depth=5)))
    assert resolved.retrieval.rrf_k == 7 and resolved.retrieval.dense_depth == 5
    assert resolved.retrieval == RetrievalChoice.of(resolved.retrieval.over(Retrieval()))
    by_vector = search.resolve(RecallQuery("u", vector=[1.0]))
    assert by_vector.retrieval.mode is SearchMode.DENSE
    with pytest.raises(InvalidInput):
        search.resolve(
            RecallQuery("u", vector=[1.0], retrieval=RetrievalChoice(mode=SearchMode.LEXICAL))
        )
    with pytest.raises(NotEnabled):
        search.resolve(RecallQuery("u", "x", retrieval=RetrievalChoice(rerank=True)))


class _Reranker:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    async def rerank(self, query: str, documents: list[str]) -> list[float]:
        if self.fail:
            raise EmbedderUnavailable("down")
        return [float("tea" in d) for d in documents]

    async def aclose(self) -> None:
        return None


@pytest.mark.parametrize("fail", [False, True])
async def test_the_reranker_reorders_and_its_failure_keeps_the_fused_order(fail: bool) -> None:
    store = InMemoryStore()
    svc = MemoryService(
        store, FakeEmbedder(), search=HybridSearch(store, WordAnalyzer(), reranker=_Reranker(fail))
    )
    await svc.remember_many([NewMemory("u", "the door code"), NewMemory("u", "green tea")])
    fused = await svc.search(RecallQuery("u", "door"))
    asked = RecallQuery("u", "door", retrieval=RetrievalChoice(rerank=True, explain=True))
    hits = await svc.search(asked)
    assert len(hits) == 2
    if fail:
        assert [h.memory for h in hits] == [h.memory for h in fused]
        assert all("rerank" not in h.ranks for h in hits)
    else:
        assert hits[0].memory.content == "green tea" and hits[0].ranks["rerank"] == 1
        assert hits[0].score == 1.0 and hits[1].score == 0.0


# -- the HTTP reranker ---------------------------------------------------------------


def _reranker(handler: httpx.MockTransport, **kwargs: object) -> HttpReranker:
    return HttpReranker(
        base_url="http://127.0.0.1:9/v1",
        api_key="sk-secret-1",
        transport=handler,
        **kwargs,  # type: ignore[arg-type]
    )


async def test_the_http_reranker_reads_tei_and_cohere_answers() -> None:
    seen: list[dict[str, object]] = []

    def tei(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        assert request.url.path == "/v1/rerank"
        assert request.headers["Authorization"] == "Bearer sk-secret-1"
        return httpx.Response(200, json=[{"index": 1, "score": 0.9}, {"index": 0, "score": 0.1}])

    def cohere(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json={
                "results": [
                    {"index": 0, "relevance_score": 0.3},
                    {"index": 1, "relevance_score": 0.7},
                ]
            },
        )

    r = _reranker(httpx.MockTransport(tei), model="bge")
    assert await r.rerank("q", ["a", "b"]) == [0.1, 0.9]
    assert seen[0] == {"query": "q", "texts": ["a", "b"], "documents": ["a", "b"], "model": "bge"}
    await r.aclose()
    r = _reranker(httpx.MockTransport(cohere))
    assert await r.rerank("q", ["a", "b"]) == [0.3, 0.7]
    assert await r.rerank("q", []) == []
    await r.aclose()


async def test_the_breaker_opens_after_failures_and_errors_name_no_secret() -> None:
    calls = 0
    now = [0.0]

    def down(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls <= 3:
            return httpx.Response(503, text="sk-secret-1 overloaded")
        return httpx.Response(200, json=[{"index": 0, "score": 1.0}])

    r = _reranker(httpx.MockTransport(down), failure_threshold=3, cooldown=10, clock=lambda: now[0])
    for _ in range(3):
        with pytest.raises(EmbedderUnavailable) as caught:
            await r.rerank("q", ["doc"])
        assert "sk-secret" not in str(caught.value) and "doc" not in str(caught.value)
    with pytest.raises(EmbedderUnavailable, match="circuit open"):
        await r.rerank("q", ["doc"])
    assert calls == 3
    now[0] = 11.0
    assert await r.rerank("q", ["doc"]) == [1.0]
    await r.aclose()


async def test_a_malformed_or_slow_answer_is_unavailable() -> None:
    def bad(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"not json")

    def short(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=[{"index": 0, "score": 1.0}])

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    for handler in (bad, short, slow):
        r = _reranker(httpx.MockTransport(handler))
        with pytest.raises(EmbedderUnavailable):
            await r.rerank("q", ["a", "b"])
        await r.aclose()
