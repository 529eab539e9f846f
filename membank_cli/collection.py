"""``membank collection setup|info|drop|optimize``: the store's collection, directly.

These open the configured store themselves: with the embedded store, stop the
server first (its data folder is opened by one process at a time).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import typer

from membank_cli.application import Application, ConfigOption
from membank_server.domain.integrity import IntegrityReport
from membank_server.domain.model import CollectionInfo
from membank_server.services.integrity import IntegrityService, RepairReport

__all__ = ["cli"]

cli = typer.Typer(
    help="Create, inspect, index or drop the memory collection.", no_args_is_help=True
)


def _show(app: Application, info: CollectionInfo, live: int, as_json: bool) -> None:
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
        app.json(rows)
    else:
        app.table("membank collection", ["setting", "value"], rows.items())


def _info(app: Application) -> tuple[CollectionInfo, int]:
    async def work() -> tuple[CollectionInfo, int]:
        store = await app.store()
        return await store.info(), await store.count()

    return app.run(work)


@cli.command()
def setup(
    ctx: typer.Context,
    config: Path | None = ConfigOption,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create the collection and its indexes if missing (safe to run again)."""
    app = Application.of(ctx)
    info, live = _info(app)
    app.success(f"collection {info.name} is ready on {info.backend}")
    _show(app, info, live, as_json)


@cli.command()
def info(
    ctx: typer.Context,
    config: Path | None = ConfigOption,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Show the collection's configuration and counts."""
    app = Application.of(ctx)
    _show(app, *_info(app), as_json)


@cli.command()
def optimize(ctx: typer.Context, config: Path | None = ConfigOption) -> None:
    """Build the HNSW index of the embedded store now (stop the server first; a running
    server builds it with POST /v1/collection/optimize, serving meanwhile)."""
    app = Application.of(ctx)
    if app.settings.storage.backend != "edge":
        app.abort("optimize is for the embedded store; a Qdrant server indexes by itself")

    async def work() -> CollectionInfo:
        store = await app.store()
        with app.status("building HNSW (this takes about a minute per 100k memories)"):
            await store.optimize()
        return await store.info()

    built = app.run(work)
    app.success(f"{built.indexed_vectors} of {built.points} vectors indexed")


@cli.command()
def drop(
    ctx: typer.Context,
    config: Path | None = ConfigOption,
    yes: bool = typer.Option(False, "--yes", help="Really delete every memory."),
) -> None:
    """Delete the collection and every memory in it."""
    app = Application.of(ctx)
    if not yes:
        app.abort("drop deletes every memory: pass --yes to confirm")

    async def work() -> None:
        store = await app.store()
        await store.drop()

    app.run(work)
    app.success("collection dropped")


@cli.command()
def verify(
    ctx: typer.Context,
    config: Path | None = ConfigOption,
    repair: bool = typer.Option(
        False, "--repair", help="Rebuild damaged records from their history; remove the rest."
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Check every record against its check values (stop the embedded server first).

    Lists the damaged ids; exits 1 when damage is found (or, with --repair, when a
    record could not be rebuilt and must come from a backup).
    """
    app = Application.of(ctx)

    async def work() -> tuple[IntegrityReport, RepairReport | None]:
        store = await app.store()
        # Verifying embeds nothing: the model is loaded only to repair.
        embedder = app.embedder()
        service = IntegrityService(store, embedder)
        with _progress(app, "verifying") as tick:
            report = await service.verify(tick)
        if not repair or report.clean:
            return report, None
        await app.started(embedder)
        with _progress(app, "repairing") as tick:
            return report, await service.repair(report, tick)

    report, mended = app.run(work)
    rows = [(d.memory_id, d.user_id or "?", d.problem) for d in report.damaged]
    if as_json:
        app.json(
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
            app.table("damaged records", ["id", "user", "problem"], rows)
        for problem in report.store_problems:
            app.warning(problem)
        app.success(f"{report.checked} records checked, {len(rows)} damaged")
        if mended is not None:
            app.success(
                f"{len(mended.rebuilt)} rebuilt from their history, {len(mended.lost)} lost"
            )
    unresolved = mended.lost if mended is not None else report.damaged
    if unresolved or report.store_problems:
        raise typer.Exit(1)


@contextlib.contextmanager
def _progress(app: Application, what: str) -> Iterator[Callable[[int], None]]:
    from rich.progress import Progress

    with Progress(transient=True, console=app.console) as bar:
        task = bar.add_task(what, total=None)
        yield lambda n: bar.advance(task, n)
