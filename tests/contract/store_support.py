"""What the MemoryStore contract's test modules share (the fixtures live in conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from membank_server.domain.model import Memory, MemoryRecord, VectorQuery
from membank_server.domain.ports import MemoryStore

__all__ = ["Records", "Unit", "list_all", "utc_now", "vector_query"]

Records = Callable[..., MemoryRecord]
Unit = Callable[..., list[float]]


def utc_now() -> datetime:
    return datetime.now(UTC)


def vector_query(
    user_id: str, vector: list[float], *, limit: int = 50, **kwargs: Any
) -> VectorQuery:
    return VectorQuery(user_id=user_id, vector=vector, limit=limit, now=utc_now(), **kwargs)


async def list_all(store: MemoryStore, user_id: str, **kwargs: Any) -> list[Memory]:
    page = await store.list_page(user_id, now=utc_now(), limit=1000, **kwargs)
    assert page.next_cursor is None
    return list(page.items)
