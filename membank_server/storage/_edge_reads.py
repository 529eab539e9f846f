"""Reads from a Qdrant Edge shard that survive a damaged record.

When Qdrant Edge meets a payload it cannot decode, it raises ("Failed to decode
value", "Payload storage is corrupted") or panics (``PanicException``, a
``BaseException``, not an ``Exception``), and the whole scroll or query fails: one
damaged record would take every listing and search of its user with it. So each
read here, on such a panic, reads again without payloads (ids, scores and vectors
come from elsewhere in the shard) and then fetches the payloads one point at a time:
the points whose payload panics come back with none, which the integrity checks then
report as damaged, and the rest are served.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import qdrant_edge as qe

__all__ = ["is_damage", "is_panic", "query", "retrieve", "scroll"]

_DAMAGE = ("decode", "deserialize", "corrupt")


def is_panic(exc: BaseException) -> bool:
    """A Rust panic surfaced by pyo3 (its type lives in a module Python cannot import)."""
    return type(exc).__name__ == "PanicException"


def is_damage(exc: BaseException) -> bool:
    """A failure that means "a stored value cannot be read", not "the store is down"."""
    text = str(exc).lower()
    return is_panic(exc) or (isinstance(exc, Exception) and any(w in text for w in _DAMAGE))


@dataclass(frozen=True, slots=True)
class _Point:
    """A point read back piece by piece (or with its payload lost to damage)."""

    id: Any
    payload: Any = None
    vector: Any = None
    score: float = 0.0


def retrieve(shard: Any, ids: Sequence[Any], payload: Any, vector: bool) -> list[Any]:
    try:
        return list(shard.retrieve(list(ids), payload, vector))
    except BaseException as exc:
        if not is_damage(exc):
            raise
    out: list[Any] = []
    for point_id in ids:
        try:
            out.extend(shard.retrieve([point_id], payload, vector))
        except BaseException as exc:
            if not is_damage(exc):
                raise
            # Found, but its payload is beyond reading: damaged, reported by the checks.
            out.append(_Point(point_id))
    return out


def scroll(shard: Any, **request: Any) -> tuple[list[Any], Any]:
    try:
        points, offset = shard.scroll(qe.ScrollRequest(**request))
        return list(points), offset
    except BaseException as exc:
        if not is_damage(exc):
            raise
    bare = {**request, "with_payload": False, "with_vector": False}
    points, offset = shard.scroll(qe.ScrollRequest(**bare))
    payload = request.get("with_payload", False)
    return retrieve(
        shard, [p.id for p in points], payload, bool(request.get("with_vector"))
    ), offset


def query(shard: Any, **request: Any) -> list[Any]:
    try:
        return list(shard.query(qe.QueryRequest(**request)))
    except BaseException as exc:
        if not is_damage(exc):
            raise
    scored = shard.query(qe.QueryRequest(**{**request, "with_payload": False}))
    payload = request.get("with_payload", True)
    found = {str(p.id): p for p in retrieve(shard, [p.id for p in scored], payload, False)}
    return [
        _Point(p.id, getattr(found.get(str(p.id)), "payload", None), None, float(p.score))
        for p in scored
    ]
