"""How HybridStore merges the answers of two stores (``read="both"``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from membank_server.domain.model import Memory, Page, SearchHit

__all__ = ["merge_hits", "merge_pages", "merge_ranks", "prefer_primary"]


def merge_hits(limit: int) -> Callable[[list[SearchHit], list[SearchHit]], list[SearchHit]]:
    def merge(primary: list[SearchHit], secondary: list[SearchHit]) -> list[SearchHit]:
        best: dict[UUID, SearchHit] = {}
        for hit in [*primary, *secondary]:
            kept = best.get(hit.memory.id)
            if kept is None or hit.score > kept.score:
                best[hit.memory.id] = hit
        return sorted(best.values(), key=lambda h: h.score, reverse=True)[:limit]

    return merge


def merge_ranks(
    limit: int,
) -> Callable[[list[tuple[UUID, float]], list[tuple[UUID, float]]], list[tuple[UUID, float]]]:
    """``merge_hits`` for ``rank``'s ids and scores."""

    def merge(
        primary: list[tuple[UUID, float]], secondary: list[tuple[UUID, float]]
    ) -> list[tuple[UUID, float]]:
        best: dict[UUID, float] = {}
        for key, score in [*primary, *secondary]:
            best[key] = max(score, best.get(key, score))
        return sorted(best.items(), key=lambda s: s[1], reverse=True)[:limit]

    return merge


def merge_pages(limit: int) -> Callable[[Page, Page], Page]:
    """Merge two pages that started at one cursor; cursors are next ids, inclusive.

    Past the smaller of the two next cursors one store may hold rows the other
    page did not reach, so the merged page stops there.
    """

    def merge(primary: Page, secondary: Page) -> Page:
        ends = [UUID(c) for c in (primary.next_cursor, secondary.next_cursor) if c is not None]
        end = min(ends) if ends else None
        items: dict[UUID, Memory] = {m.id: m for m in secondary.items}
        items.update((m.id, m) for m in primary.items)
        ordered = [items[i] for i in sorted(items) if end is None or i < end]
        if len(ordered) > limit:
            return Page(tuple(ordered[:limit]), str(ordered[limit].id))
        return Page(tuple(ordered), str(end) if end is not None else None)

    return merge


def prefer_primary(primary: dict[Any, Any], secondary: dict[Any, Any]) -> dict[Any, Any]:
    return {**secondary, **primary}
