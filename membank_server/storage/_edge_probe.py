"""Open a Qdrant Edge shard first in a throwaway process, with bounded memory.

Damaged shard files can make Qdrant Edge allocate without bound (one try asked for
102 GB) or abort while it loads them, taking the server with it. So before the
server loads a shard, a child process loads it under an address-space limit and
counts its points; if that child dies (a signal, the limit, an abort) or hangs,
the server refuses to open the shard with a message, instead of dying or eating
the machine's memory. The limit is generous: a base for the interpreter and the
engine, plus four times the shard's files (they are memory-mapped).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from membank_server.domain.errors import StorageUnavailable

__all__ = ["probe_shard"]

_BASE = 2 * 1024**3
_LOCKED = ("WouldBlock", "Can't init WAL", "Resource temporarily unavailable")
_PROBE = """
import resource, sys
limit = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
import qdrant_edge as qe
shard = qe.EdgeShard.load(sys.argv[1])
print(shard.count(qe.CountRequest(exact=True)))
shard.close()
"""


def _files_size(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue
    return total


def probe_shard(path: Path, timeout: float = 300.0) -> int:
    """Load the shard at ``path`` in a child process; its point count.

    Raises:
        StorageUnavailable: the child could not load it (damaged files), or hung.
    """
    limit = _BASE + 4 * _files_size(path)
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE, str(path), str(limit)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
    except subprocess.TimeoutExpired as exc:
        raise StorageUnavailable(
            f"the store at {path} did not open within {timeout:.0f} s in a check process: "
            "its files may be damaged"
        ) from exc
    if done.returncode == 0:
        return int(done.stdout.strip() or 0)
    if done.returncode < 0:
        how = f"died of {signal.Signals(-done.returncode).name}"
    else:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1][:300]
        if any(sign in done.stderr for sign in _LOCKED):
            raise StorageUnavailable(
                f"the store at {path} is open in another process (its write-ahead log is "
                "locked): stop that process, or give this one its own data folder"
            )
        how = f"failed ({last})"
    raise StorageUnavailable(
        f"the store at {path} could not be opened: a check process that loaded it {how}. "
        "Its files are likely damaged: restore the folder from a backup "
        "(membank backup restore), or move it aside to start empty"
    )
