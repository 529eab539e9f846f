"""Scale runs of ``membank bench search``: one big tenant, a kept data set, per-memory figures.

At a million memories the load is the slow part, so a run can keep its data
(``--data DIR``: the embedded store's folder under it, or a PostgreSQL schema named
after it) and a later run of the same plan searches it without loading again.
What a kept folder holds is written beside it (``bench-<backend>.json``): the plan
it was loaded with and the load's phases; another plan on the same folder is refused.

The HNSW index is built before serving: ``membank collection optimize`` for the
embedded store (its ``optimize()`` holds the GIL, so a server would freeze), and
for pgvector, with ``--pg-index-after``, the index dropped before the load and made
again after it with the definition it had (as one bulk-loads PostgreSQL), timed.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from membank_cli.bench._http import Phase
from membank_server.domain.errors import MembankError

__all__ = [
    "BIG_TENANT",
    "big_count",
    "build_pg_index",
    "drop_pg_index",
    "keep_load",
    "kept_load",
    "optimize_edge",
    "per_memory",
    "schema_for",
    "tenants",
]

#: The tenant holding ``--skew`` of the memories.
BIG_TENANT = "user-big"


def big_count(n: int, share: float) -> int:
    """How many of ``n`` memories the big tenant holds at ``share`` (0 for none)."""
    return round(n * share)


def tenants(start: int, count: int, n: int, users: int, big: int, rng: random.Random) -> list[str]:
    """The users of memories ``start`` .. ``start + count`` of ``n``: exactly ``big`` of all
    ``n`` (spread evenly) go to :data:`BIG_TENANT`, each other to one of ``users`` at random."""
    return [
        BIG_TENANT if (i + 1) * big // n > i * big // n else f"user-{rng.randrange(users)}"
        for i in range(start, min(start + count, n))
    ]


def per_memory(total_bytes: float | None, n: int) -> float | None:
    """Bytes per memory, rounded; None when unknown or there are no memories."""
    return None if total_bytes is None or n <= 0 else round(total_bytes / n, 1)


def schema_for(data: Path | None, backend: str) -> str:
    """The PostgreSQL schema of a run: named after a kept folder, else this process."""
    if data is None:
        return f"bench_{os.getpid()}_{backend}"
    return f"bench_{re.sub(r'[^a-z0-9_]', '_', data.name.lower())[:40]}_{backend}"


def _marker(data: Path, backend: str) -> Path:
    return data / f"bench-{backend}.json"


def kept_load(data: Path, backend: str, plan: Mapping[str, Any]) -> list[Phase] | None:
    """The load phases of a kept data set of this plan; None if nothing was kept.

    Raises:
        MembankError: the folder holds a data set loaded with another plan.
    """
    marker = _marker(data, backend)
    if not marker.exists():
        return None
    kept = json.loads(marker.read_text())
    if kept["plan"] != dict(plan):
        raise MembankError(
            f"{data} holds a {backend} data set of another plan ({kept['plan']}); "
            "use another --data folder or remove this one"
        )
    return [Phase(**p) for p in kept["phases"]]


def keep_load(data: Path, backend: str, plan: Mapping[str, Any], phases: list[Phase]) -> None:
    """Write what ``data`` now holds, for :func:`kept_load`."""
    body = {"plan": dict(plan), "phases": [asdict(p) for p in phases]}
    _marker(data, backend).write_text(json.dumps(body, indent=1))


def optimize_edge(env: Mapping[str, str], n: int) -> Phase:
    """``membank collection optimize`` on the stopped store, as a timed phase."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "membank_cli", "collection", "optimize"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise MembankError(f"collection optimize failed: {done.stderr[-500:]}")
    return Phase("index build (collection optimize)", n, took, n / took)


async def drop_pg_index(dsn: str, schema: str) -> str:
    """Drop the schema's HNSW index; its definition, to make it again."""
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT c.oid::regclass::text AS name, pg_get_indexdef(c.oid) AS ddl"
            " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " JOIN pg_am a ON a.oid = c.relam WHERE n.nspname = $1 AND a.amname = 'hnsw'",
            schema,
        )
        if row is None:
            raise MembankError(f"schema {schema} has no HNSW index to drop")
        await conn.execute(f"DROP INDEX {row['name']}")
        return str(row["ddl"])
    finally:
        await conn.close()


async def build_pg_index(dsn: str, ddl: str, n: int, memory: str) -> Phase:
    """Make the index ``ddl`` defines, with ``maintenance_work_mem = memory``, timed."""
    import asyncpg

    if not re.fullmatch(r"\d+(kB|MB|GB)", memory):
        raise MembankError(f"--pg-build-mem takes a size such as 2GB, not {memory!r}")
    conn = await asyncpg.connect(dsn, command_timeout=None)
    try:
        await conn.execute(f"SET maintenance_work_mem = '{memory}'")
        started = time.perf_counter()
        await conn.execute(ddl)
        took = time.perf_counter() - started
    finally:
        await conn.close()
    return Phase(f"index build (CREATE INDEX hnsw, {memory})", n, took, n / took)
