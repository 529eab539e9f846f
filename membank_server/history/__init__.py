"""Where the server keeps its own history: samples, request windows, tuning sessions.

Two adapters of :class:`~membank_server.domain.observe.HistoryStore`:
``sqlite`` (a file under the data folder, shared by the workers of one machine)
and ``pg`` (tables in the PostgreSQL schema the server already uses, shared by
every instance).
"""

from __future__ import annotations

__all__: list[str] = []
