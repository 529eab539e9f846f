"""The result and embedding cache in the service, over fakes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from membank_server.domain.model import MetadataCondition, SearchFilter
from membank_server.domain.retrieval import FusionMethod, Retrieval, RetrievalChoice, SearchMode
from membank_server.services.inputs import MemoryPatch, NewMemory, RecallQuery
from membank_server.services.memories import MemoryService
from membank_server.services.recall_cache import RecallCache, normalize_query, replayable
from tests.unit.fakes import DictCache, DictGenerations, FakeEmbedder, InMemoryStore, ListPopular


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def parts() -> tuple[MemoryService, FakeEmbedder, DictGenerations, ListPopular, Clock]:
    embedder, gens, popular, clock = FakeEmbedder(), DictGenerations(), ListPopular(), Clock()
    cache = RecallCache(DictCache(), gens, popular)
    svc = MemoryService(InMemoryStore(), embedder, clock=clock, recall_cache=cache)
    return svc, embedder, gens, popular, clock


async def test_repeat_query_skips_embedder_and_store(parts: tuple) -> None:  # type: ignore[type-arg]
    svc, embedder, _, popular, _ = parts
    await svc.remember(NewMemory("u1", "I like tea"))
    calls = len(embedder.calls)
    hits, how = await svc.recall(RecallQuery("u1", query="I like tea"))
    assert how == "miss" and len(embedder.calls) == calls + 1
    again, how = await svc.recall(RecallQuery("u1", query="  i LIKE   tea "))
    assert how == "hit" and again == hits and len(embedder.calls) == calls + 1
    other, how = await svc.recall(RecallQuery("u2", query="I like tea"))
    assert how == "miss" and other == []
    # Query embeddings are cached per user: another tenant's same question is embedded
    # again, so no tenant can tell from a faster answer what another one asked.
    assert len(embedder.calls) == calls + 2
    assert len(popular.seen) == 3


async def test_every_write_makes_later_reads_miss(parts: tuple) -> None:  # type: ignore[type-arg]
    svc, _, _, _, _ = parts
    m, _ = await svc.remember(NewMemory("u1", "I like tea"))
    q = RecallQuery("u1", query="tea")
    await svc.recall(q)
    assert (await svc.recall(q))[1] == "hit"
    await svc.update("u1", m.id, MemoryPatch(content="I like coffee"))
    hits, how = await svc.recall(q)
    assert how == "miss" and hits[0].memory.content == "I like coffee"
    await svc.remember_many([NewMemory("u1", "green tea")])
    assert (await svc.recall(q))[1] == "miss"
    await svc.forget("u1", m.id)
    hits, how = await svc.recall(q)
    assert how == "miss" and [h.memory.content for h in hits] == ["green tea"]
    await svc.forget_user("u1")
    assert await svc.recall(q) == ([], "miss")


async def test_generations_down_bypasses_then_epoch_bumps(parts: tuple) -> None:  # type: ignore[type-arg]
    svc, _, gens, _, _ = parts
    await svc.remember(NewMemory("u1", "I like tea"))
    q = RecallQuery("u1", query="tea")
    await svc.recall(q)
    gens.down = True
    assert (await svc.recall(q))[1] == "bypass"
    await svc.remember(NewMemory("u1", "I like cake"))  # the bump fails: remembered
    gens.down = False
    hits, how = await svc.recall(q)
    assert how == "miss" and len(hits) == 2
    assert gens.values["*"] == 1


async def test_cached_hits_that_expired_are_dropped(parts: tuple) -> None:  # type: ignore[type-arg]
    svc, _, _, _, clock = parts
    await svc.remember(NewMemory("u1", "door code 4321", expires_at=clock.now + timedelta(hours=1)))
    q = RecallQuery("u1", query="door code")
    assert len((await svc.recall(q))[0]) == 1
    clock.now += timedelta(hours=2)
    hits, how = await svc.recall(q)
    assert how == "hit" and hits == []


def test_specs_round_trip_for_warmup() -> None:
    filters = SearchFilter(agent_id="a", metadata=(MetadataCondition("k", any_of=("x", 2)),))
    q = RecallQuery("u1", query=" What   Food? ", limit=7, min_score=0.2, filters=filters)
    import msgspec

    from membank_server.services.recall_cache import _spec

    back = replayable("u1", msgspec.json.encode(_spec(q)))
    assert back == RecallQuery("u1", "what food?", None, 7, 0.2, filters)
    assert normalize_query("Ünïcode\u0301  X") == normalize_query("ünïcode\u0301 x")


async def test_the_retrieval_is_part_of_the_key_and_of_the_replay(parts: tuple) -> None:  # type: ignore[type-arg]
    svc, _, _, popular, _ = parts
    await svc.remember(NewMemory("u1", "the door code is 4471"))
    lexical = RetrievalChoice(mode=SearchMode.LEXICAL)
    assert (await svc.recall(RecallQuery("u1", "door 4471", retrieval=lexical)))[1] == "miss"
    assert (await svc.recall(RecallQuery("u1", "door 4471", retrieval=lexical)))[1] == "hit"
    # The server's defaults, said or not, are one search; another mode or knob is another.
    assert (await svc.recall(RecallQuery("u1", "door 4471")))[1] == "miss"
    said = RetrievalChoice.of(Retrieval())
    assert (await svc.recall(RecallQuery("u1", "door 4471", retrieval=said)))[1] == "hit"
    rrf = RetrievalChoice(fusion=FusionMethod.RRF)
    assert (await svc.recall(RecallQuery("u1", "door 4471", retrieval=rrf)))[1] == "miss"
    # What warmup replays keeps the retrieval the search had.
    user, body = popular.seen[0]
    assert replayable(user, body).retrieval.mode is SearchMode.LEXICAL
