"""Where the embedded store's live shard is: generations of one collection folder.

An index build (``_edge_build``) makes a new copy of the shard, so a collection
folder can hold more than one. The layout::

    <collection>/history.db        the history database (every generation shares it)
    <collection>/GENERATION        names the live shard folder, e.g. ``gen-000002``
    <collection>/gen-000002/       a shard: edge_config.json, segments/, wal/
    <collection>/edge_config.json  ... or the shard sits in the collection folder
                                   itself (no GENERATION file: every store before the
                                   first build, and stores made by earlier versions)

The pointer file alone decides which shard is live: it is replaced atomically
(written to a temporary file, synced, renamed over the old one, the folder synced),
so a crash leaves either the old name or the new one. No folder is renamed under an
open shard (Qdrant Edge opens its files by path on every flush). What is not live is
a leftover of a finished or abandoned build and is removed (:func:`tidy`) when the
store opens and after each build.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from membank_server.domain.errors import StorageUnavailable

__all__ = [
    "POINTER",
    "SHARD_ENTRIES",
    "copy_shard",
    "live_folder",
    "next_folder",
    "switch",
    "sync_tree",
    "tidy",
]

POINTER = "GENERATION"
#: What a Qdrant Edge 0.9 shard folder holds.
SHARD_ENTRIES = ("edge_config.json", "segments", "wal")
_GENERATION = re.compile(r"gen-(\d{6})")


def live_folder(root: Path) -> Path:
    """The folder of the live shard of the collection at ``root``."""
    try:
        name = (root / POINTER).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return root
    if not _GENERATION.fullmatch(name):
        # Only this module writes the file, and it is replaced atomically.
        raise StorageUnavailable(
            f"{root / POINTER} names no shard generation ({name[:40]!r}): "
            "restore the folder from a backup"
        )
    return root / name


def next_folder(root: Path) -> Path:
    """A fresh folder name for the next generation (after every one on disk)."""
    numbers = [0]
    for entry in os.listdir(root):
        found = _GENERATION.fullmatch(entry)
        if found:
            numbers.append(int(found.group(1)))
    return root / f"gen-{max(numbers) + 1:06d}"


def copy_shard(source: Path, target: Path) -> None:
    """Copy the shard files at ``source`` into a new folder ``target`` (the shard must be
    flushed, and no write may reach it during the copy)."""
    target.mkdir()
    sources = [source / name for name in SHARD_ENTRIES if (source / name).exists()]
    cp = shutil.which("cp") if sys.platform.startswith("linux") else None
    if cp is not None:
        # GNU cp keeps the holes of Qdrant's sparse files (32 MiB WAL segments, paged
        # storage): half the bytes and half the time of a plain copy, which writes wait for.
        subprocess.run([cp, "-a", "--reflink=auto", *map(str, sources), str(target)], check=True)
        return
    for src in sources:
        if src.is_dir():
            shutil.copytree(src, target / src.name)
        else:
            shutil.copy2(src, target / src.name)


def sync_tree(folder: Path) -> None:
    """fsync every file and folder under ``folder`` (a copy is durable before it is live)."""
    for dirpath, _, files in os.walk(folder):
        for name in files:
            _fsync(Path(dirpath) / name, directory=False)
        _fsync(Path(dirpath), directory=True)


def switch(root: Path, folder: Path) -> None:
    """Make ``folder`` (a generation under ``root``) the live shard, atomically and durably."""
    tmp = root / f"{POINTER}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, f"{folder.name}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, root / POINTER)
    _fsync(root, directory=True)


def tidy(root: Path) -> list[str]:
    """Remove what is not the live shard: other generations, a half-written pointer, and
    the shard files in ``root`` itself once a generation is live; the names removed."""
    if not root.is_dir():
        return []
    live = live_folder(root)
    if live != root and not (live / "edge_config.json").exists():
        return []  # a pointer to nothing: keep everything for whoever repairs it
    removed = []
    for entry in sorted(os.listdir(root)):
        path = root / entry
        stale = (_GENERATION.fullmatch(entry) and path != live) or entry == f"{POINTER}.tmp"
        if stale or (live != root and entry in SHARD_ENTRIES):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(entry)
    return removed


def _fsync(path: Path, *, directory: bool) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
