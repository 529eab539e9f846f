"""``membank collection setup|info|drop|optimize``: the store's collection, directly.

These open the configured store themselves: with the embedded store, stop the
server first (its data folder is opened by one process at a time).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import typer

from membank_cli.output import console, fail, print_json, success, table, warning
from membank_server.bootstrap import build_embedder, build_folder_lock, build_store
from membank_server.config import Settings, load_settings
from membank_server.domain.errors import MembankError
from membank_server.domain.integrity import IntegrityReport
from membank_server.domain.model import CollectionInfo
from membank_server.domain.ports import MemoryStore
from membank_server.services.integrity import IntegrityService, RepairReport

__all__ = ["app"]

app = typer.Typer(
    help="Create, inspect, index or drop the memory collection.", no_args_is_help=True
)
_T = TypeVar("_T")
ConfigOption = typer.Option(None, "--config", "-c", help="TOML settings file.")


def _settings(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except MembankError as exc:
        fail(exc)


def _with_store(settings: Settings, work: Callable[[MemoryStore], Awaitable[_T]]) -> _T:
    async def run() -> _T:
        # The same lock the server takes: never open a folder a running server owns.
        lock = build_folder_lock(settings)
        if lock is not None:
            lock.acquire()
        try:
            store = build_store(settings)
            await store.start()
            try:
                return await work(store)
            finally:
                await store.aclose()
        finally:
            if lock is not None:
                lock.release()

    try:
        return asyncio.run(run())
    except MembankError as exc:
        fail(exc)


def _show(info: CollectionInfo, live: int, as_json: bool) -> None:
    rows = {
        "backend": info.backend,
        "collection": info.name,
        "dimension": info.dimension,
        "distance": info.distance,
        "points (incl. deleted)": info.points,
        "live memories": live,
        "indexed vectors (HNSW)": info.indexed_vectors,
        "segments": info.segments,
        **{k: v for k, v in info.extra.items()},
    }
    if as_json:
        print_json(rows)
    else:
        table("membank collection", ["setting", "value"], rows.items())


@app.command()
def setup(config: Path = ConfigOption, as_json: bool = typer.Option(False, "--json")) -> None:
    """Create the collection and its indexes if missing (safe to run again)."""
    settings = _settings(config)

    async def work(store: MemoryStore) -> tuple[CollectionInfo, int]:
        return await store.info(), await store.count()

    info, live = _with_store(settings, work)
    success(f"collection {info.name} is ready on {info.backend}")
    _show(info, live, as_json)


@app.command()
def info(config: Path = ConfigOption, as_json: bool = typer.Option(False, "--json")) -> None:
    """Show the collection's configuration and counts."""
    settings = _settings(config)

    async def work(store: MemoryStore) -> tuple[CollectionInfo, int]:
        return await store.info(), await store.count()

    _show(*_with_store(settings, work), as_json)


@app.command()
def optimize(config: Path = ConfigOption) -> None:
    """Build the HNSW index of the embedded store now (stop the server first)."""
    settings = _settings(config)
    if settings.storage.backend != "edge":
        fail("optimize is for the embedded store; a Qdrant server indexes by itself")

    async def work(store: MemoryStore) -> CollectionInfo:
        with console.status("building HNSW (this takes about a minute per 100k memories)"):
            await store.optimize()
        return await store.info()

    built = _with_store(settings, work)
    success(f"{built.indexed_vectors} of {built.points} vectors indexed")


@app.command()
def drop(
    config: Path = ConfigOption,
    yes: bool = typer.Option(False, "--yes", help="Really delete every memory."),
) -> None:
    """Delete the collection and every memory in it."""
    if not yes:
        fail("drop deletes every memory: pass --yes to confirm")
    settings = _settings(config)

    async def work(store: MemoryStore) -> None:
        await store.drop()

    _with_store(settings, work)
    success("collection dropped")


@app.command()
def verify(
    config: Path = ConfigOption,
    repair: bool = typer.Option(
        False, "--repair", help="Rebuild damaged records from their history; remove the rest."
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Check every record against its check values (stop the embedded server first).

    Lists the damaged ids; exits 1 when damage is found (or, with --repair, when a
    record could not be rebuilt and must come from a backup).
    """
    settings = _settings(config)

    async def work(store: MemoryStore) -> tuple[IntegrityReport, RepairReport | None]:
        embedder = build_embedder(settings)
        service = IntegrityService(store, embedder)
        with _progress("verifying") as tick:
            report = await service.verify(tick)
        if not repair or report.clean:
            return report, None
        await embedder.start()
        try:
            with _progress("repairing") as tick:
                return report, await service.repair(report, tick)
        finally:
            await embedder.aclose()

    report, mended = _with_store(settings, work)
    rows = [(d.memory_id, d.user_id or "?", d.problem) for d in report.damaged]
    if as_json:
        print_json(
            {
                "checked": report.checked,
                "damaged": [dict(zip(("id", "user_id", "problem"), r, strict=True)) for r in rows],
                "store_problems": report.store_problems,
                "rebuilt": mended.rebuilt if mended else [],
                "lost": [d.memory_id for d in mended.lost] if mended else [],
            }
        )
    else:
        if rows:
            table("damaged records", ["id", "user", "problem"], rows)
        for problem in report.store_problems:
            warning(problem)
        success(f"{report.checked} records checked, {len(rows)} damaged")
        if mended is not None:
            success(f"{len(mended.rebuilt)} rebuilt from their history, {len(mended.lost)} lost")
    unresolved = mended.lost if mended is not None else report.damaged
    if unresolved or report.store_problems:
        raise typer.Exit(1)


@contextlib.contextmanager
def _progress(what: str) -> Iterator[Callable[[int], None]]:
    from rich.progress import Progress

    with Progress(transient=True, console=console) as bar:
        task = bar.add_task(what, total=None)
        yield lambda n: bar.advance(task, n)
