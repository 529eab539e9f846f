"""How ``membank bench search`` runs on servers it starts: one per backend, its data set
loaded (or found kept), its index built, then searched by a fresh server; the server's
RSS after the searches and the data's disk are kept beside the phases.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from membank_cli._local_server import bench_security, local_server, rss_bytes
from membank_cli.application import Application
from membank_cli.bench._http import Phase
from membank_cli.bench._scale import (
    build_pg_index,
    drop_pg_index,
    keep_load,
    kept_load,
    optimize_edge,
    schema_for,
)
from membank_cli.bench._search import BACKENDS, SearchPlan, load, measure, probe
from membank_cli.capacity.calibrate import data_dir_bytes, pg_drop, pg_sizes, rss_file_bytes

__all__ = ["Run", "check", "runs"]

#: Seconds a server may take to start: at 1M memories the store's check and load are slow.
_START = 900


@dataclass
class Run:
    backend: str
    phases: list[Phase]
    #: The server's RSS after the searches, its data's disk, pgvector's HNSW index.
    rss_bytes: int | None = None
    #: Of the RSS, pages mapped from files (the store's mmapped segments: page cache).
    rss_file_bytes: int | None = None
    disk_bytes: int | None = None
    index_bytes: int | None = None


def _backend_env(plan: SearchPlan, backend: str, tmp: Path) -> dict[str, str]:
    """Settings that put a bench server on one backend (own schema / collection)."""
    run = schema_for(plan.data, backend)
    env = {"MEMBANK_STORAGE__BACKEND": backend, "MEMBANK_STORAGE__EDGE__PATH": str(tmp / "edge")}
    if backend in ("pgvector", "hybrid"):
        assert plan.pg_dsn is not None  # checked before the server starts
        env |= {
            "MEMBANK_STORAGE__POSTGRES__DSN": plan.pg_dsn,
            "MEMBANK_STORAGE__POSTGRES__SCHEMA": run,
        }
    if backend in ("qdrant", "hybrid"):
        where = (
            {"MEMBANK_STORAGE__QDRANT__URL": plan.qdrant_url}
            if plan.qdrant_url
            else {"MEMBANK_STORAGE__QDRANT__PATH": str(tmp / "qdrant-local")}
        )
        env |= where | {"MEMBANK_STORAGE__QDRANT__COLLECTION": run}
    if backend == "hybrid":
        env |= {"MEMBANK_STORAGE__HYBRID__SECONDARY": "qdrant" if plan.qdrant_url else "edge"}
    return env


def check(app: Application, plan: SearchPlan) -> None:
    if plan.url and not plan.url.startswith(("http://127.", "http://localhost", "http://[::1]")):
        app.abort("bench only targets a server on this machine (127.0.0.1/localhost)")
    unknown = sorted(set(plan.backends) - set(BACKENDS))
    if unknown:
        app.abort(f"unknown backend {unknown[0]!r}: choose from {', '.join(BACKENDS)}")
    if set(plan.modes) - {"dense", "lexical", "hybrid"}:
        app.abort("--mode takes dense, lexical or hybrid")
    if not 0 <= plan.skew < 1:
        app.abort("--skew is a share of the memories, from 0 up to (not including) 1")
    if plan.url and (plan.data or plan.optimize or plan.pg_index_after):
        app.abort("--data, --optimize and --pg-index-after apply to servers the bench starts")
    if "qdrant" in plan.backends and not plan.qdrant_url:
        app.warning(
            "no --qdrant-url: the qdrant backend runs on qdrant-client's local mode, which is "
            "brute force in the server's event loop; its figures say nothing about a Qdrant server"
        )


@contextmanager
def _folder(plan: SearchPlan, backend: str) -> Iterator[Path]:
    """The run's data folder: kept under ``--data``, else a fresh one removed after."""
    if plan.data is not None:
        folder = plan.data / backend
        folder.mkdir(parents=True, exist_ok=True)
        yield folder
        return
    with tempfile.TemporaryDirectory(prefix="membank-bench-") as tmp:
        yield Path(tmp)


def _load(
    app: Application, plan: SearchPlan, name: str, env: dict[str, str], tmp: Path
) -> list[Phase]:
    """Load the data set (or find it kept), and build the index before serving."""
    phases = kept_load(tmp, name, plan.key()) if plan.data else None
    dsn, schema = plan.pg_dsn or "", schema_for(plan.data, name)
    if phases is None:
        if plan.data:  # what an unfinished load left: the bench's own folder and schema
            shutil.rmtree(tmp / "edge", ignore_errors=True)
            if dsn:
                app.run(lambda: pg_drop(dsn, schema))
        bulk = name == "pgvector" and plan.pg_index_after is not None
        with local_server(tmp, env, timeout=_START) as server:
            ddl = app.run(lambda: drop_pg_index(dsn, schema)) if bulk else ""
            phases = app.run(lambda: load(server.url, plan, app.console))
            if bulk:
                phases[0].phase += " (no HNSW index)"
                memory = plan.pg_index_after or ""
                phases.append(app.run(lambda: build_pg_index(dsn, ddl, plan.n, memory)))
        if plan.data:
            keep_load(tmp, name, plan.key(), phases)
    else:
        phases = [replace(p, phase=f"{p.phase} (kept)") for p in phases]
    if plan.optimize and name == "edge":
        with app.status("building HNSW (collection optimize)"):
            phases.append(optimize_edge(env, plan.n))
    return phases


def _footprint(app: Application, plan: SearchPlan, run: Run, tmp: Path) -> None:
    """The data's disk: the data folder, or for pgvector the schema (dropped unless kept)."""
    dsn, schema = plan.pg_dsn, schema_for(plan.data, run.backend)
    if run.backend in ("pgvector", "hybrid") and dsn:
        run.disk_bytes, run.index_bytes = app.run(lambda: pg_sizes(dsn, schema))
        if plan.data is None:
            app.run(lambda: pg_drop(dsn, schema))
    else:
        run.disk_bytes = data_dir_bytes(tmp)


def runs(app: Application, plan: SearchPlan) -> list[Run]:
    if plan.url:
        return [
            Run("(running server)", app.run(lambda: measure(plan.url or "", plan, app.console)))
        ]
    runs: list[Run] = []
    for name in plan.backends:
        if name in ("pgvector", "hybrid") and not plan.pg_dsn:
            app.abort(f"--backend {name} needs --pg-dsn (or MEMBANK_STORAGE__POSTGRES__DSN)")
        with _folder(plan, name) as tmp:
            env = {**bench_security(), **_backend_env(plan, name, tmp)}
            if plan.modes:
                env["MEMBANK_CACHE__ENABLED"] = "false"  # each search embeds its query
            phases = _load(app, plan, name, env, tmp)
            with local_server(tmp, env, timeout=_START) as server:
                phases += app.run(lambda: probe(server.url, plan, app.console))
                run = Run(name, phases, rss_bytes(server.pid), rss_file_bytes(server.pid))
            _footprint(app, plan, run, tmp)
            runs.append(run)
    return runs
