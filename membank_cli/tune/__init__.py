"""``membank tune``: find a running server's bottlenecks, and change one tunable at a time."""

from __future__ import annotations

__all__: list[str] = []
