"""The history of a Qdrant store: a vectorless collection beside the memories.

One point per history event (``history_point_id``: memory id, version and event),
payload as :func:`~membank_server.storage._payload.history_event_to_payload` writes
it, indexed by ``memory_id`` and ``user_id``. Events are written before the record
that names their version, and read only up to the record's current version, so an
event left by a write that failed halfway never shows (the retry replaces it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, TypeVar

from qdrant_client import AsyncQdrantClient, models

from membank_server.domain.errors import StorageUnavailable
from membank_server.domain.integrity import report_damage
from membank_server.domain.model import HistoryEvent, Memory
from membank_server.storage._checked import payload_problem
from membank_server.storage._payload import (
    history_event_from_payload,
    history_event_to_payload,
    history_point_id,
)

__all__ = ["QdrantHistory"]

_T = TypeVar("_T")
_Call = Callable[[str, Callable[[AsyncQdrantClient], Awaitable[Any]]], Awaitable[Any]]
_PAGE = 1000


def _sound(payload: dict[str, Any]) -> bool:
    """An event matching its check; a damaged one is reported and left out."""
    if payload_problem("", {k: v for k, v in payload.items() if k != "id"}) is None:
        return True
    report_damage(str(payload.get("memory_id")), "a history event differs from the one written")
    return False


def _match(key: str, value: Any) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


class QdrantHistory:
    """History events in ``collection``, through the store's retrying ``call``.

    Args:
        call: The owning store's ``_call`` (retries, error translation).
        collection: The history collection's name.
        limit: Versions kept per memory (None: all).
        batch_size: Points per upsert request.
    """

    def __init__(
        self, call: _Call, collection: str, limit: int | None, batch_size: int = 256
    ) -> None:
        self._call = call
        self.collection = collection
        self.limit = limit
        self._batch_size = batch_size

    async def ensure(self, local: bool) -> None:
        name = self.collection
        if not await self._call("find the history", lambda c: c.collection_exists(name)):
            try:
                await self._call(
                    "create the history", lambda c: c.create_collection(name, vectors_config={})
                )
            except StorageUnavailable:
                # Another instance may have made it since we looked.
                if not await self._call("find the history", lambda c: c.collection_exists(name)):
                    raise
        if local:
            return  # local mode has no payload indexes
        for key, schema in (
            ("memory_id", models.PayloadSchemaType.KEYWORD),
            ("user_id", models.PayloadSchemaType.KEYWORD),
            ("version", models.PayloadSchemaType.INTEGER),
        ):
            await self._call(
                f"index history {key}",
                partial(
                    AsyncQdrantClient.create_payload_index,
                    collection_name=name,
                    field_name=key,
                    field_schema=schema,
                    wait=True,
                ),
            )

    async def add(self, events: Sequence[tuple[Memory, HistoryEvent]]) -> None:
        points = [
            models.PointStruct(
                id=history_point_id(m, h), vector={}, payload=history_event_to_payload(m, h)
            )
            for m, h in events
        ]
        for start in range(0, len(points), self._batch_size):
            await self._call(
                "write history",
                partial(
                    AsyncQdrantClient.upsert,
                    collection_name=self.collection,
                    points=points[start : start + self._batch_size],
                    wait=True,
                ),
            )
        if self.limit is None:
            return
        newest: dict[str, int] = {}
        for m, h in events:
            newest[str(m.id)] = max(h.version, newest.get(str(m.id), 0))
        for memory_id, version in newest.items():
            if version > self.limit:
                await self._delete(
                    "prune history",
                    [
                        _match("memory_id", memory_id),
                        models.FieldCondition(
                            key="version", range=models.Range(lte=version - self.limit)
                        ),
                    ],
                )

    async def read(self, user_id: str, memory_id: str, up_to: int) -> tuple[HistoryEvent, ...]:
        flt = models.Filter(
            must=[
                _match("memory_id", memory_id),
                _match("user_id", user_id),
                models.FieldCondition(key="version", range=models.Range(lte=up_to)),
            ]
        )
        events = [history_event_from_payload(p) for p in await self._scroll(flt) if _sound(p)]
        return tuple(sorted(events, key=lambda h: (h.version, h.at)))

    async def read_many(self, memory_ids: Sequence[str]) -> dict[str, tuple[HistoryEvent, ...]]:
        if not memory_ids:
            return {}
        flt = models.Filter(
            must=[
                models.FieldCondition(key="memory_id", match=models.MatchAny(any=list(memory_ids)))
            ]
        )
        found: dict[str, list[HistoryEvent]] = {}
        for payload in await self._scroll(flt):
            if _sound(payload):
                found.setdefault(payload["memory_id"], []).append(
                    history_event_from_payload(payload)
                )
        return {k: tuple(sorted(v, key=lambda h: (h.version, h.at))) for k, v in found.items()}

    async def memories(self) -> dict[str, tuple[str, set[int], bool]]:
        """Per memory with history: its user, the versions of its sound events, and
        whether an event of it is damaged (for verification)."""
        out: dict[str, tuple[str, set[int], bool]] = {}
        for p in await self._scroll(models.Filter()):
            memory_id = str(p.get("memory_id"))
            user, versions, _ = out.setdefault(memory_id, (str(p.get("user_id")), set(), False))
            if payload_problem(memory_id, {k: v for k, v in p.items() if k != "id"}) is None:
                versions.add(int(p.get("version", 0)))
            else:
                out[memory_id] = (user, versions, True)
        return out

    async def delete_user(self, user_id: str) -> None:
        await self._delete("erase history", [_match("user_id", user_id)])

    async def delete_memories(self, memory_ids: Sequence[str]) -> None:
        for start in range(0, len(memory_ids), _PAGE):
            chunk = list(memory_ids[start : start + _PAGE])
            await self._delete(
                "erase history",
                [models.FieldCondition(key="memory_id", match=models.MatchAny(any=chunk))],
            )

    async def drop(self) -> None:
        name = self.collection
        await self._call("drop the history", lambda c: c.delete_collection(name))

    async def _scroll(self, flt: models.Filter) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        offset: Any = None
        while True:
            records, offset = await self._call(
                "read history",
                partial(
                    AsyncQdrantClient.scroll, collection_name=self.collection,
                    scroll_filter=flt, limit=_PAGE, offset=offset, with_payload=True,
                ),
            )  # fmt: skip
            out.extend(r.payload or {} for r in records)
            if offset is None:
                return out

    async def _delete(self, what: str, must: list[Any]) -> None:
        selector = models.FilterSelector(filter=models.Filter(must=must))
        await self._call(
            what, lambda c: c.delete(self.collection, points_selector=selector, wait=True)
        )
