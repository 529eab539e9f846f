"""LocalCache: the in-process level (L1), bounded in entries and in bytes.

Eviction is cachetools' (``lru``, ``lfu`` or ``fifo``) with the byte size of each
value as its weight, so the sum of cached value bytes never exceeds ``max_bytes``;
the entry count is capped separately at ``max_entries``.

TTLs sit on top: every entry carries its expiry on the injected clock, checked on
read. Expired entries are also dropped eagerly (a heap of expiry times, consulted on
every call) so they give their bytes back without waiting to be read or evicted;
under LFU a once-popular entry would otherwise hold its place long after expiring.

All work is synchronous and short (no I/O), so the async methods never await.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Callable, Sequence
from typing import Literal, NamedTuple

import cachetools

__all__ = ["EvictionPolicy", "LocalCache"]

EvictionPolicy = Literal["lru", "lfu", "fifo"]


class _Entry(NamedTuple):
    value: bytes
    expires_at: float
    # Tells this entry from an earlier one under the same key in the expiry heap.
    seq: int


def _weight(entry: _Entry) -> int:
    return len(entry.value)


_POLICIES: dict[str, type[cachetools.Cache[str, _Entry]]] = {
    "lru": cachetools.LRUCache,
    "lfu": cachetools.LFUCache,
    "fifo": cachetools.FIFOCache,
}


class LocalCache:
    """The :class:`~membank_server.domain.ports.Cache` port in process memory.

    Args:
        policy: Which entry to evict when full: least recently used, least
            frequently used, or first inserted.
        max_entries: Most entries held at once.
        max_bytes: Most value bytes held at once; a value larger than this is not
            cached at all. None for no byte bound.
        default_ttl: Seconds an entry lives when ``set`` gives no ttl; None for
            entries that live until evicted.
        name: The level's label in metrics.
        clock: Monotonic seconds; injectable for tests.
    """

    def __init__(
        self,
        *,
        policy: EvictionPolicy = "lru",
        max_entries: int = 10_000,
        max_bytes: int | None = 64 * 1024 * 1024,
        default_ttl: float | None = 60.0,
        name: str = "l1",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if policy not in _POLICIES:
            raise ValueError(f"unknown eviction policy {policy!r}; use lru, lfu or fifo")
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        if max_bytes is not None and max_bytes < 0:
            raise ValueError("max_bytes must not be negative")
        _check_ttl(default_ttl)
        self._name = name
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.default_ttl = default_ttl
        self._clock = clock
        self._policy = policy
        self._data: cachetools.Cache[str, _Entry] = _POLICIES[policy](
            maxsize=math.inf if max_bytes is None else max_bytes, getsizeof=_weight
        )
        self._expiries: list[tuple[float, int, str]] = []
        self._seq = 0

    @property
    def name(self) -> str:
        return self._name

    @property
    def nbytes(self) -> int:
        """Value bytes held now."""
        self._expire()
        return int(self._data.currsize)

    def __len__(self) -> int:
        self._expire()
        return len(self._data)

    async def get(self, key: str) -> bytes | None:
        self._expire()
        return self._get(key)

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        self._expire()
        return [self._get(key) for key in keys]

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        _check_ttl(ttl)
        self._expire()
        self._data.pop(key, None)
        if self.max_bytes is not None and len(value) > self.max_bytes:
            return
        ttl = self.default_ttl if ttl is None else ttl
        expires_at = math.inf if ttl is None else self._clock() + ttl
        while len(self._data) >= self.max_entries:
            self._data.popitem()
        self._seq += 1
        # cachetools evicts by policy until the new value's bytes fit.
        self._data[key] = _Entry(bytes(value), expires_at, self._seq)
        if expires_at != math.inf:
            heapq.heappush(self._expiries, (expires_at, self._seq, key))
            self._compact()

    async def delete(self, keys: Sequence[str]) -> None:
        self._expire()
        for key in keys:
            self._data.pop(key, None)

    async def clear(self, prefix: str = "") -> int:
        self._expire()
        doomed = [key for key in self._data if key.startswith(prefix)]
        for key in doomed:
            del self._data[key]
        if not self._data:
            self._expiries.clear()
        return len(doomed)

    async def aclose(self) -> None:
        self._data.clear()
        self._expiries.clear()

    def resize(self, *, max_entries: int | None = None, max_bytes: int | None = None) -> None:
        """New bounds, at once (the tuner's change): entries over them are evicted by policy."""
        if max_entries is not None:
            if max_entries < 1:
                raise ValueError("max_entries must be at least 1")
            self.max_entries = max_entries
        if max_bytes is not None:
            if max_bytes < 0:
                raise ValueError("max_bytes must not be negative")
            self.max_bytes = max_bytes
        old = self._data
        self._data = _POLICIES[self._policy](
            maxsize=math.inf if self.max_bytes is None else self.max_bytes, getsizeof=_weight
        )
        for key in list(old):
            entry = self._peek_in(old, key)
            if entry is None or len(entry.value) > (self._data.maxsize or 0):
                continue
            while len(self._data) >= self.max_entries:
                self._data.popitem()
            self._data[key] = entry

    def _get(self, key: str) -> bytes | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry.expires_at <= self._clock():
            del self._data[key]
            return None
        return entry.value

    def _peek(self, key: str) -> _Entry | None:
        """The entry under ``key`` without counting a use (which LRU/LFU would)."""
        return self._peek_in(self._data, key)

    @staticmethod
    def _peek_in(data: cachetools.Cache[str, _Entry], key: str) -> _Entry | None:
        if key not in data:
            return None
        return cachetools.Cache.__getitem__(data, key)

    def _expire(self) -> None:
        now = self._clock()
        heap = self._expiries
        while heap and heap[0][0] <= now:
            _, seq, key = heapq.heappop(heap)
            entry = self._peek(key)
            if entry is not None and entry.seq == seq:
                del self._data[key]

    def _compact(self) -> None:
        # Overwritten and evicted entries leave stale heap items until their time
        # comes; rebuild when they outnumber the live ones, so the heap stays O(n).
        if len(self._expiries) <= 2 * len(self._data) + 64:
            return
        live = []
        for key in self._data:
            entry = self._peek(key)
            if entry is not None and entry.expires_at != math.inf:
                live.append((entry.expires_at, entry.seq, key))
        heapq.heapify(live)
        self._expiries = live


def _check_ttl(ttl: float | None) -> None:
    if ttl is not None and not ttl > 0:
        raise ValueError(f"ttl must be positive seconds or None, not {ttl!r}")
