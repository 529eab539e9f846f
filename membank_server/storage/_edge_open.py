"""What the embedded store does to its folder before it loads the shard.

Run in a worker thread when :class:`~membank_server.storage.edge.EdgeStore` starts:
remove what an index build left (``_edge_generations``), find the live shard, load it
once in a throwaway process (``_edge_probe``) and bring a shard of an earlier version
to today's layout (``_edge_lexical``); then, once the shard is open, the history
database beside it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from membank_server.domain.errors import StorageUnavailable
from membank_server.lexical import LexicalIndex
from membank_server.storage._edge_generations import POINTER, live_folder, tidy
from membank_server.storage._edge_lexical import migrate_to_lexical
from membank_server.storage._edge_probe import probe_shard
from membank_server.storage._edge_shard import ShardThreads

__all__ = ["open_history", "prepare_live"]

_log = logging.getLogger("membank.storage")


def prepare_live(root: Path, config: Any, lexical: LexicalIndex, *, probe: bool) -> Path:
    """The live shard's folder under the collection folder ``root``, ready to load."""
    live = live_folder(root)
    exists = (live / "edge_config.json").exists()
    if live != root and not exists:
        raise StorageUnavailable(
            f"{root / POINTER} names {live.name}, which holds no shard: "
            "restore the folder from a backup"
        )
    removed = tidy(root)
    if removed:
        _log.info("removed what an earlier index build left: %s", ", ".join(removed))
    if probe and exists:
        probe_shard(live)
    copied = migrate_to_lexical(live, config, lexical)
    if copied:
        _log.info("indexed %d points for lexical search (a shard of an earlier version)", copied)
    return live


async def open_history(threads: ShardThreads) -> None:
    """Open the history database on the writer thread, with advice when it cannot be."""
    history = threads.history
    try:
        await threads.on_writer(history.open)
    except StorageUnavailable as exc:
        raise StorageUnavailable(
            f"the history database {history.path} could not be opened "
            f"({exc.message.removeprefix('Qdrant Edge failed: ')}): restore the folder from "
            "a backup, or move that file aside to keep the memories without their history"
        ) from exc
