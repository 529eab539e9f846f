"""What a store can check cheaply about a record it reads back, and how damage is reported.

A record carries its own check values, written with it: a digest of its payload
(every field, so a changed byte of content, metadata, user or time shows), and
three figures of its vector (two weighted sums of its unit-length components, so
changes do not cancel out, and its length). On a
read the store compares them; a record that fails is never returned as if it were
valid: a read by id answers ``IntegrityError`` (500 ``integrity_error``), a listing or
a search leaves it out, and either way it is logged once with its id (never its
content) for ``membank collection verify`` to list and ``--repair`` to mend.

Values sealed by field encryption (``mbenc1|...``) are authenticated by AES-GCM when
they are opened, so their content digest is not checked again here.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CHECK",
    "SEALED_PREFIX",
    "Damage",
    "IntegrityReport",
    "event_check",
    "payload_check",
    "report_damage",
    "vector_figures",
    "vector_problem",
]

#: The payload field holding a record's check values.
CHECK = "check"
#: How a value sealed by field encryption starts (its integrity is AES-GCM's).
SEALED_PREFIX = "mbenc1|"
#: How far a figure may drift between the float64 written and the float32 stored.
_TOLERANCE = 1e-5

_log = logging.getLogger("membank.integrity")
_reported: set[str] = set()


def payload_check(payload: Mapping[str, Any]) -> str:
    """The digest of a payload's fields (the check field itself left out)."""
    text = json.dumps(
        {k: v for k, v in payload.items() if k != CHECK},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def event_check(*fields: object) -> str:
    """The digest of one history event's fields (as stored), for its row."""
    text = "\x1f".join(str(f) for f in fields)
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def _weight(i: int) -> float:
    # Fixed pseudo-random weights in [-0.5, 0.5): a change to two components cancels
    # in one weighted sum only by chance, not in both.
    return ((i * 2654435761) % 1000) / 1000 - 0.5


@functools.lru_cache(maxsize=8)
def _weights(dimension: int) -> tuple[float, ...]:
    return tuple(_weight(i) for i in range(dimension))


def vector_figures(vector: Sequence[float]) -> list[float]:
    """Two weighted sums of the vector's unit-length components, and its length.

    Plain float64 sums in C (about 25 us for 384 components, a seventh of exact
    ``fsum`` over generators: this runs for every record written): their rounding
    error, around 1e-14, is far inside the tolerance a read allows."""
    norm = math.hypot(*vector)
    if norm == 0 or not math.isfinite(norm):
        return [0.0, 0.0, norm]
    return [
        sum(vector) / norm,
        sum(map(operator.mul, vector, _weights(len(vector)))) / norm,
        norm,
    ]


def vector_problem(
    vector: Sequence[float],
    figures: Sequence[float] | None,
    dimension: int,
    *,
    unit: bool,
) -> str | None:
    """What is wrong with a stored vector, or None. ``unit``: the store keeps vectors at
    unit length (cosine), so the length written is not the length read back."""
    if len(vector) != dimension:
        return f"vector has {len(vector)} components, not {dimension}"
    if not all(map(math.isfinite, vector)):
        return "vector has a component that is not a finite number"
    if figures is None or len(figures) != 3:
        return None
    now = vector_figures(vector)
    slack = _TOLERANCE * max(1.0, math.sqrt(dimension))
    if abs(now[0] - figures[0]) > slack or abs(now[1] - figures[1]) > slack:
        return "vector differs from the one written"
    if not unit and abs(now[2] - figures[2]) > _TOLERANCE * max(1.0, figures[2]):
        return "vector length differs from the one written"
    if unit and abs(now[2] - 1.0) > 10 * _TOLERANCE:
        return "vector is not of unit length"
    return None


@dataclass(frozen=True, slots=True)
class Damage:
    """One damaged record: its id, its user when that is still known, what is wrong."""

    memory_id: str
    problem: str
    user_id: str | None = None


@dataclass
class IntegrityReport:
    """What ``MemoryStore.verify`` found: records checked and those damaged."""

    checked: int = 0
    damaged: list[Damage] = field(default_factory=list)
    #: Problems of the store as a whole (a history database that fails its check).
    store_problems: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.damaged and not self.store_problems


def report_damage(memory_id: str, problem: str) -> None:
    """Log a damaged record once per process: its id and what is wrong, never content."""
    if memory_id not in _reported:
        _reported.add(memory_id)
        _log.error(
            "memory %s failed its integrity check (%s): it is not served; "
            "run `membank collection verify --repair`",
            memory_id,
            problem,
        )
