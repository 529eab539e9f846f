"""``membank collection setup|info|drop|optimize``: the store's collection, directly.

These open the configured store themselves: with the embedded store, stop the
server first (its data folder is opened by one process at a time).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import typer

from membank_cli.output import fail, print_json, success, table
from membank_server.bootstrap import build_store
from membank_server.config import Settings, load_settings
from membank_server.domain.errors import MembankError
from membank_server.domain.model import CollectionInfo
from membank_server.domain.ports import MemoryStore

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
        store = build_store(settings)
        await store.start()
        try:
            return await work(store)
        finally:
            await store.aclose()

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
        from membank_cli.output import console

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
