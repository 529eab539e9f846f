"""Bringing an Edge shard made before lexical search to today's layout, at start.

A shard's vectors are fixed when it is made, and Qdrant Edge refuses to open one
with a sparse vector its segments lack. So a shard without the ``lexical`` vector is
copied, point by point, into a new shard in ``<folder>/.lexical-next`` (each live
point gets its sparse vector from its content), and the new shard's files then take
the old ones' place. The swap is a sequence of renames within the folder, each step
marked done by a file, so a crash at any point leaves either the old shard (the copy
starts again) or a swap that the next start finishes; the old files go last. The
history database and everything else in the folder stay where they are.

Sealed content (field encryption) cannot be analysed here: those points get their
terms at their next write through the encrypting store, or a key rotation's reseal.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from membank_server.lexical import LexicalIndex
from membank_server.storage._lexical import LEXICAL, dense_part, point_vectors
from membank_server.storage._payload import record_from_payload

__all__ = ["has_lexical", "migrate_to_lexical"]

_log = logging.getLogger("membank.storage")
_NEXT, _OLD, _DONE = ".lexical-next", ".lexical-old", "COMPLETE"
_PAGE = 500


def has_lexical(path: Path) -> bool:
    """Whether the shard at ``path`` has the lexical vector (a new shard will)."""
    config = path / "edge_config.json"
    if not config.exists():
        return True
    data = json.loads(config.read_text(encoding="utf-8"))
    return LEXICAL in (data.get("sparse_vectors") or {})


def migrate_to_lexical(path: Path, config: Any, index: LexicalIndex) -> int:
    """Finish an interrupted swap, or copy an old shard into today's layout and swap it
    in; how many points were copied (0 when there was nothing to do)."""
    nxt, old = path / _NEXT, path / _OLD
    if (nxt / _DONE).exists():
        _swap(path)
        return 0
    if has_lexical(path):
        shutil.rmtree(old, ignore_errors=True)
        return 0
    shutil.rmtree(nxt, ignore_errors=True)
    copied = _copy(path, nxt, config, index)
    (nxt / _DONE).write_text("copied\n", encoding="utf-8")
    _swap(path)
    return copied


def _copy(path: Path, nxt: Path, config: Any, index: LexicalIndex) -> int:
    source = qe.EdgeShard.load(str(path))
    target = qe.EdgeShard.create(str(nxt), config)
    try:
        for key, schema in source.info().payload_schema.items():
            params = schema.params if schema.params is not None else schema.data_type
            target.update(qe.UpdateOperation.create_field_index(key, params))
        copied, offset = 0, None
        while True:
            points, offset = source.scroll(
                qe.ScrollRequest(offset=offset, limit=_PAGE, with_payload=True, with_vector=True)
            )
            batch = []
            for p in points:
                vector = dense_part(p.vector) or []
                record = record_from_payload(str(p.id), p.payload or {}, vector)
                batch.append(
                    qe.Point(p.id, point_vectors(record, index, qe.SparseVector), p.payload)
                )
            if batch:
                target.update(qe.UpdateOperation.upsert_points(batch))
            copied += len(batch)
            if offset is None:
                break
        target.flush()
        return copied
    finally:
        target.close()
        source.close()


def _swap(path: Path) -> None:
    """Move the old shard's entries aside, then the new ones in; each step resumable."""
    nxt, old = path / _NEXT, path / _OLD
    entries = [e.name for e in nxt.iterdir() if e.name != _DONE]
    if not (old / _DONE).exists():
        old.mkdir(exist_ok=True)
        for name in entries:
            if (path / name).exists() and not (old / name).exists():
                (path / name).rename(old / name)
        (old / _DONE).write_text("moved aside\n", encoding="utf-8")
    for name in entries:
        if (nxt / name).exists():
            (nxt / name).rename(path / name)
    shutil.rmtree(nxt)
    shutil.rmtree(old)
    _log.info("the store at %s now has a lexical index", path)
