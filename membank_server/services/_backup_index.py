"""What a backup reads of a store page by page, and the index of it every backup keeps.

Pages are read ahead (two at a time) on the store's threads while the pages before
them are encoded and compressed on others. The index is one line per record read
(``[id, user_id, version, deleted, content crc32]``): the state of the store as the
backup saw it. An incremental backup compares the store with its parent's index: a
record whose version, deletion or content changed, or that is new, is written again;
a record of the parent's index that is gone (its user erased, expired and purged,
discarded) is written to the ``erased`` section. The index is held compactly (about
40 bytes a record), the parent's as a dictionary (about 200 bytes a record).
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any
from uuid import UUID

from membank_server.domain.model import MemoryRecord

__all__ = ["IndexRow", "ParentIndex", "Scan", "StoreIndex", "prefetched", "record_state"]

Scan = Callable[[str | None, int], Awaitable[tuple[list[MemoryRecord], str | None]]]
#: One line of the ``index`` section.
IndexRow = tuple[str, str, int, bool, int]
_END: Any = object()


def record_state(r: MemoryRecord) -> int:
    """What an incremental backup compares: version, deletion and a crc of the content."""
    crc = zlib.crc32(r.memory.content.encode("utf-8", "surrogatepass"))
    return (r.memory.version << 33) | ((r.deleted_at is not None) << 32) | crc


async def prefetched(scan: Scan, page: int, ahead: int = 2) -> AsyncIterator[list[MemoryRecord]]:
    """Every page of ``scan``, the next ones read while the caller works on this one."""
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=ahead)

    async def read() -> None:
        cursor: str | None = None
        try:
            while True:
                records, cursor = await scan(cursor, page)
                await queue.put(records)
                if cursor is None:
                    break
            await queue.put(_END)
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, raised there
            await queue.put(exc)

    reader = asyncio.create_task(read(), name="backup scan")
    try:
        while (item := await queue.get()) is not _END:
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader


class StoreIndex:
    """The index of the records a backup read, compact, in the order read."""

    def __init__(self) -> None:
        self._ids = bytearray()
        self._users: dict[str, int] = {}
        self._user_of = array.array("I")
        self._states: list[int] = []

    def __len__(self) -> int:
        return len(self._states)

    def add(self, r: MemoryRecord) -> int:
        """Note a record; its state (see :func:`record_state`)."""
        self._ids += r.memory.id.bytes
        user = self._users.setdefault(r.memory.user_id, len(self._users))
        self._user_of.append(user)
        state = record_state(r)
        self._states.append(state)
        return state

    def rows(self) -> Iterator[IndexRow]:
        names = list(self._users)
        for i, state in enumerate(self._states):
            memory_id = str(UUID(bytes=bytes(self._ids[16 * i : 16 * i + 16])))
            version, deleted, crc = state >> 33, bool(state >> 32 & 1), state & 0xFFFFFFFF
            yield (memory_id, names[self._user_of[i]], version, deleted, crc)


class ParentIndex:
    """A parent backup's index: which records changed since, and which are gone."""

    def __init__(self) -> None:
        self._known: dict[bytes, tuple[int, str]] = {}
        self._names: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._known)

    def add_row(self, row: IndexRow) -> None:
        memory_id, user, version, deleted, crc = row
        user = self._names.setdefault(user, user)
        self._known[UUID(memory_id).bytes] = ((version << 33) | (deleted << 32) | crc, user)

    def changed(self, r: MemoryRecord, state: int) -> bool:
        """Whether ``r`` (in ``state``) differs from the parent's; it is then known seen."""
        known = self._known.pop(r.memory.id.bytes, None)
        return known is None or known[0] != state

    def gone(self) -> Iterator[tuple[str, str]]:
        """(id, user_id) of the parent's records not seen since."""
        for key, (_, user) in self._known.items():
            yield str(UUID(bytes=key)), user
