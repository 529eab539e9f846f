"""RecallCache: search results and query embeddings through the tiered cache.

What is cached:

* search results, under ``s:{user}:{epoch}.{generation}:{digest}`` where the digest
  covers the normalised query text (or the vector's bytes), limit, min_score,
  filters and the embedder model;
* query embeddings, under ``e:{user}:{digest}`` of (model, normalised text): a pure
  function of its key, so it never needs invalidating. Kept per user although the
  vector does not depend on who asks: a cache shared across tenants would tell any
  tenant, by a faster answer, that someone else had asked the same question.

Correctness: every write bumps the user's generation (an atomic counter shared by
all instances) after the store has the write and before the write is answered, so
any later read, on any instance, builds a key no earlier entry has. When the
counters cannot be read (Redis down), searches skip the result cache and go to the
store; a bump that failed is remembered and, once the counters answer again, the
global epoch is bumped too, so entries another instance cached meanwhile are dropped.
"""

from __future__ import annotations

import hashlib
import logging
import struct
import time
import unicodedata
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import msgspec

from membank_server.domain.errors import CacheUnavailable
from membank_server.domain.model import SearchFilter, SearchHit
from membank_server.domain.ports import Cache, Generations, PopularQueries
from membank_server.domain.telemetry import NullTelemetry, Telemetry
from membank_server.services.inputs import RecallQuery

__all__ = [
    "EPOCH_KEY",
    "CacheCounts",
    "CacheStats",
    "CachedHits",
    "LevelCounts",
    "RecallCache",
    "embedding_prefix",
    "normalize_query",
    "replayable",
    "search_prefix",
]

_log = logging.getLogger("membank.cache")
#: The generation counter that stands for "every user" (bumped after an outage).
EPOCH_KEY = "*"
_hits = msgspec.json.Decoder(list[SearchHit])
_floats = msgspec.json.Decoder(list[float])


def normalize_query(text: str) -> str:
    """NFC, case-folded, with runs of whitespace collapsed: how two asks become one key."""
    return " ".join(unicodedata.normalize("NFC", text).casefold().split())


def _escaped(user_id: str) -> str:
    # ``%`` and ``:`` escaped so user ``a``'s prefix never matches user ``a:b``'s keys.
    return user_id.replace("%", "%25").replace(":", "%3A")


def search_prefix(user_id: str) -> str:
    """The prefix of every cached search of one user (``cache flush --user``)."""
    return f"s:{_escaped(user_id)}:"


def embedding_prefix(user_id: str) -> str:
    """The prefix of every cached query embedding of one user."""
    return f"e:{_escaped(user_id)}:"


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(4, "big"))
        h.update(part)
    return h.hexdigest()[:40]


class _Spec(msgspec.Struct, array_like=True):
    """What makes two searches the same search; also what warmup replays."""

    text: str | None
    vector: list[float] | None
    limit: int
    min_score: float | None
    filters: SearchFilter


def _spec(q: RecallQuery) -> _Spec:
    text = normalize_query(q.query) if q.query is not None else None
    return _Spec(text, q.vector, q.limit, q.min_score, q.filters)


def _spec_key(spec: _Spec, model: str) -> str:
    vector = struct.pack(f"<{len(spec.vector)}f", *spec.vector) if spec.vector is not None else b""
    rest = msgspec.json.encode(_Spec(spec.text, None, spec.limit, spec.min_score, spec.filters))
    return _digest(model.encode(), vector, rest)


def replayable(user_id: str, query: bytes) -> RecallQuery:
    """The search a counted query stands for (warmup replays it)."""
    spec = msgspec.json.decode(query, type=_Spec)
    return RecallQuery(user_id, spec.text, spec.vector, spec.limit, spec.min_score, spec.filters)


class CachedHits(list[SearchHit]):
    """Hits served from the result cache, with the bytes they were decoded from: equal
    bytes are equal hits, so a caller may keep its own encoding of them keyed by ``blob``."""

    __slots__ = ("blob",)

    def __init__(self, hits: list[SearchHit], blob: bytes) -> None:
        super().__init__(hits)
        self.blob = blob


class CacheStats:
    """Counts of cache outcomes in this process, forwarded to telemetry as they come."""

    def __init__(self, telemetry: Telemetry | None = None) -> None:
        self._telemetry = telemetry or NullTelemetry()
        self.levels: dict[str, Counter[str]] = {}
        self.searches: Counter[str] = Counter()

    def level(self, level: str, outcome: str) -> None:
        self.levels.setdefault(level, Counter())[outcome] += 1
        self._telemetry.cache_level(level, outcome)

    def search(self, outcome: str, seconds: float) -> None:
        self.searches[outcome] += 1
        self._telemetry.cached_search(outcome, seconds)

    def snapshot(self) -> CacheCounts:
        return CacheCounts(
            searches=dict(self.searches),
            search_hit_ratio=_ratio(self.searches),
            levels={
                name: LevelCounts(dict(counts), _ratio(counts))
                for name, counts in self.levels.items()
            },
        )


def _ratio(c: Counter[str]) -> float | None:
    seen = c["hit"] + c["miss"]
    return round(c["hit"] / seen, 4) if seen else None


@dataclass(frozen=True)
class LevelCounts:
    #: outcome (hit, miss, error, ...) -> count
    outcomes: dict[str, int]
    hit_ratio: float | None


@dataclass(frozen=True)
class CacheCounts:
    """Cache outcomes of this process: of whole searches, and per level."""

    searches: dict[str, int]
    search_hit_ratio: float | None
    levels: dict[str, LevelCounts]


class RecallCache:
    """Read-through caching of recall, invalidated by per-user generations.

    Args:
        cache: The tiered cache (or any one level).
        generations: Shared per-user counters (Redis) — or local ones for one instance.
        popular: Where searches are counted for warmup; None to not count.
        search_ttl: Lifetime of a cached search result, seconds; None caches only
            query embeddings (results need shared generations to be cached safely).
        embedding_ttl: Lifetime of a cached query embedding, seconds.
        stats: Where outcomes are counted (and forwarded to telemetry).
    """

    def __init__(
        self,
        cache: Cache,
        generations: Generations,
        popular: PopularQueries | None = None,
        *,
        search_ttl: float | None = 300.0,
        embedding_ttl: float = 86_400.0,
        stats: CacheStats | None = None,
    ) -> None:
        self.cache = cache
        self.generations = generations
        self.popular = popular
        self.search_ttl = search_ttl
        self.embedding_ttl = embedding_ttl
        self.stats = stats or CacheStats()
        self._missed_bumps: set[str] = set()

    async def search(
        self,
        q: RecallQuery,
        model: str,
        compute: Callable[[], Awaitable[list[SearchHit]]],
    ) -> tuple[list[SearchHit], str]:
        """Cached hits for ``q``, or ``compute()``'s, cached; and ``hit``, ``miss`` or
        ``bypass`` (the counters are down: computed, not cached)."""
        if self.search_ttl is None:
            return await compute(), "off"
        spec = _spec(q)
        if self.popular is not None and spec.text is not None:
            await self.popular.record(q.user_id, msgspec.json.encode(spec))
        started = time.perf_counter()
        try:
            key = await self._search_key(q.user_id, _spec_key(spec, model))
        except CacheUnavailable:
            self.stats.search("bypass", time.perf_counter() - started)
            return await compute(), "bypass"
        cached = await self.cache.get(key)
        if cached is not None:
            self.stats.search("hit", time.perf_counter() - started)
            return CachedHits(_hits.decode(cached), cached), "hit"
        self.stats.search("miss", time.perf_counter() - started)
        hits = await compute()
        await self.cache.set(key, msgspec.json.encode(hits), self.search_ttl)
        return hits, "miss"

    async def embedding(
        self, user_id: str, model: str, text: str, compute: Callable[[], Awaitable[list[float]]]
    ) -> list[float]:
        key = embedding_prefix(user_id) + _digest(model.encode(), normalize_query(text).encode())
        cached = await self.cache.get(key)
        if cached is not None:
            return _floats.decode(cached)
        vector = await compute()
        await self.cache.set(key, msgspec.json.encode(vector), self.embedding_ttl)
        return vector

    async def invalidate(self, user_ids: Iterable[str]) -> None:
        """Make every cached search of these users unreachable, on every instance."""
        for user_id in set(user_ids):
            try:
                await self.generations.bump(user_id)
            except CacheUnavailable:
                self._missed_bumps.add(user_id)
                _log.warning("cache generation bump failed for a user; will bump the epoch")

    async def flush(self, user_id: str | None = None) -> int:
        """Drop cached searches (of one user, or all, embeddings included).

        Only entries go: generation counters and popular-query counts stay, since a
        counter that went back to an old value could make an old entry current again.
        """
        if user_id is None:
            return await self.cache.clear("s:") + await self.cache.clear("e:")
        await self.invalidate([user_id])
        return await self.cache.clear(search_prefix(user_id)) + await self.cache.clear(
            embedding_prefix(user_id)
        )

    async def aclose(self) -> None:
        if self.popular is not None:
            await self.popular.aclose()
        await self.generations.aclose()
        await self.cache.aclose()

    async def _search_key(self, user_id: str, digest: str) -> str:
        if self._missed_bumps:
            await self.generations.bump(EPOCH_KEY)
            self._missed_bumps.clear()
        epoch, generation = await self.generations.current([EPOCH_KEY, user_id])
        return f"{search_prefix(user_id)}{epoch}.{generation}:{digest}"
