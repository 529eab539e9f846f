"""Query parameters the schema cannot check alone: times with an offset, durations."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from membank_server.domain.errors import InvalidInput

__all__ = ["DURATION_PATTERN", "duration", "instant"]

#: What a duration parameter takes, in the schema too: a positive count and a unit.
DURATION_PATTERN = r"^([1-9][0-9]{0,6})([smhdw])$(?!\n)"
_DURATION = re.compile(DURATION_PATTERN)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def instant(text: str | None, name: str) -> datetime | None:
    """A query time as the schema says (RFC 3339 with an offset): not a bare number,
    which a lax conversion would take for a Unix timestamp."""
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None or not text[:4].isdigit():
        raise InvalidInput(f"{name}: an RFC 3339 time with an offset, e.g. 2026-01-01T00:00:00Z")
    return when


def duration(text: str, name: str) -> timedelta:
    """``90s``, ``15m``, ``1h``, ``7d`` or ``2w``."""
    found = _DURATION.match(text)
    if found is None:
        raise InvalidInput(f"{name}: a duration such as 90s, 15m, 1h, 7d or 2w, not {text!r}")
    return timedelta(seconds=int(found[1]) * _UNITS[found[2]])
