"""The offline work on a Qdrant collection: moving history out of payloads written by
earlier versions, and verifying every record (``domain.integrity``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from qdrant_client import AsyncQdrantClient, models

from membank_server.domain.integrity import IntegrityReport
from membank_server.domain.model import HistoryEvent, Memory
from membank_server.storage._checked import tally
from membank_server.storage._edge_ops import history_problems
from membank_server.storage._payload import (
    HISTORY,
    legacy_history,
    memory_from_payload,
    record_from_payload,
    record_to_payload,
)
from membank_server.storage._qdrant_history import QdrantHistory

__all__ = ["move_legacy_history", "verify_collection"]

_Call = Callable[[str, Callable[[AsyncQdrantClient], Awaitable[Any]]], Awaitable[Any]]
_PAGE = 500


async def move_legacy_history(call: _Call, collection: str, history: QdrantHistory) -> None:
    """Points of earlier versions carry their history in the payload: move it to the
    history collection and write the points again in today's layout, once, at start."""
    legacy = models.Filter(
        must_not=[models.IsEmptyCondition(is_empty=models.PayloadField(key=HISTORY))]
    )
    while True:
        records, _ = await call(
            "find legacy history",
            partial(
                AsyncQdrantClient.scroll, collection_name=collection, scroll_filter=legacy,
                limit=_PAGE, with_payload=True, with_vectors=True,
            ),
        )  # fmt: skip
        if not records:
            return
        events: list[tuple[Memory, HistoryEvent]] = []
        points = []
        for r in records:
            payload = r.payload or {}
            events.extend(
                (memory_from_payload(str(r.id), payload), h) for h in legacy_history(payload) or ()
            )
            vector = [float(x) for x in r.vector] if isinstance(r.vector, list) else []
            record = record_from_payload(str(r.id), payload, vector)
            points.append(
                models.PointStruct(id=str(r.id), vector=vector, payload=record_to_payload(record))
            )
        await history.add(events)
        await call(
            "rewrite legacy points",
            partial(AsyncQdrantClient.upsert, collection_name=collection, points=points, wait=True),
        )


async def verify_collection(
    call: _Call,
    collection: str,
    history: QdrantHistory,
    *,
    dimension: int,
    unit: bool,
    progress: Callable[[int], None] | None = None,
) -> IntegrityReport:
    report = IntegrityReport()
    versions: dict[str, int] = {}
    offset: Any = None
    while True:
        records, offset = await call(
            "verify",
            partial(
                AsyncQdrantClient.scroll, collection_name=collection, limit=_PAGE,
                offset=offset, with_payload=True, with_vectors=True,
            ),
        )  # fmt: skip
        for r in records:
            tally(report, versions, r.id, r.payload, r.vector, dimension=dimension, unit=unit)
        if progress is not None:
            progress(len(records))
        if offset is None:
            break
    report.damaged.extend(history_problems(await history.memories(), versions, history.limit))
    return report
