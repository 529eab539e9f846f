"""The embedded store's history database keeps the newest ``limit`` versions of a memory."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

from membank_server.domain.model import Event, HistoryEvent, Memory
from membank_server.storage._sqlite_history import SqliteHistory


def _memory() -> Memory:
    now = datetime.now(UTC)
    return Memory(uuid4(), "pruned", "text", {}, now, now, 1, "hash")


def test_history_keeps_the_newest_versions_up_to_the_limit(tmp_path: Path) -> None:
    history = SqliteHistory(tmp_path / "history.db", limit=2)
    history.open()
    kept, young = _memory(), _memory()
    at = datetime.now(UTC)
    for version in range(1, 5):
        event = HistoryEvent(Event.UPDATE, version, f"v{version}", {}, at)
        history.begin()
        history.add([(kept, event)] + ([(young, event)] if version <= 2 else []))
        history.commit()
    try:
        assert [e.version for e in history.read("pruned", str(kept.id), 10)] == [3, 4]
        assert [e.version for e in history.read("pruned", str(young.id), 10)] == [1, 2]
    finally:
        history.close()
