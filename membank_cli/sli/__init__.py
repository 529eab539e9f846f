"""``membank sli``: a running server's service level indicators against its objectives."""

from __future__ import annotations

__all__: list[str] = []
