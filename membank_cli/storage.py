"""``membank storage verify|reindex``: compare two stores, rebuild one from the other.

Both open the stores named in the settings directly (``storage.postgres``,
``storage.qdrant``, ``storage.edge``), so an embedded Edge store needs its server
stopped; PostgreSQL and a Qdrant server can be checked while serving.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from membank_cli.output import console, fail, print_json, success, table, warning
from membank_server.bootstrap import build_single_store
from membank_server.config import Settings, load_settings
from membank_server.domain.errors import MembankError
from membank_server.domain.ports import MemoryStore
from membank_server.services.storage_ops import VerifyReport, copy_store, verify_stores

__all__ = ["app"]

app = typer.Typer(
    help="Compare the stores of a hybrid setup, or rebuild one from another.", no_args_is_help=True
)
_T = TypeVar("_T")
_ALIASES = {
    "postgres": "pgvector",
    "pg": "pgvector",
    "pgvector": "pgvector",
    "qdrant": "qdrant",
    "edge": "edge",
}
ConfigOption = typer.Option(None, "--config", "-c", help="TOML settings file.")


def _kind(name: str) -> str:
    if name not in _ALIASES:
        fail(f"unknown store {name!r}: postgres, qdrant or edge")
    return _ALIASES[name]


def _run(
    settings: Settings,
    kinds: tuple[str, str],
    work: Callable[[MemoryStore, MemoryStore], Awaitable[_T]],
) -> _T:
    async def run() -> _T:
        left = build_single_store(settings, kinds[0])
        right = build_single_store(settings, kinds[1])
        await left.start()
        try:
            await right.start()
            try:
                return await work(left, right)
            finally:
                await right.aclose()
        finally:
            await left.aclose()

    try:
        return asyncio.run(run())
    except MembankError as exc:
        fail(exc)


def _settings(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except MembankError as exc:
        fail(exc)


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.completed:,} records"),
        TimeElapsedColumn(),
        console=console,
    )


@app.command()
def verify(
    left: str = typer.Option(None, help="First store [default: storage.hybrid.primary]."),
    right: str = typer.Option(None, help="Second store [default: storage.hybrid.secondary]."),
    config: Path = ConfigOption,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Compare two stores record by record: ids, owners, content hashes, versions."""
    settings = _settings(config)
    kinds = (
        _kind(left or settings.storage.hybrid.primary),
        _kind(right or settings.storage.hybrid.secondary),
    )

    async def work(a: MemoryStore, b: MemoryStore) -> VerifyReport:
        with _progress() as progress:
            task = progress.add_task("reading both stores")
            return await verify_stores(a, b, progress=lambda n: progress.advance(task, n))

    report = _run(settings, kinds, work)
    if as_json:
        print_json(
            {
                "same": report.same,
                "left": report.left,
                "right": report.right,
                "left_records": report.left_records,
                "right_records": report.right_records,
                "users": report.users,
                "users_differing": report.users_differing,
                "differences": [d.__dict__ for d in report.differences],
            }
        )
    else:
        table(
            f"storage verify: {report.left} vs {report.right}",
            ["", report.left, report.right],
            [
                ("records (incl. deleted)", report.left_records, report.right_records),
                ("users", report.users, ""),
                ("users differing", report.users_differing, ""),
            ],
        )
        if report.differences:
            table(
                "differences",
                ["id", "user", "problem"],
                [(d.id, d.user_id, d.problem) for d in report.differences],
            )
    if report.same:
        success("the stores hold the same records")
    else:
        raise typer.Exit(1)


@app.command()
def reindex(
    source: str = typer.Option(..., "--from", help="The store of truth, e.g. postgres."),
    target: str = typer.Option(..., "--to", help="The store to rebuild, e.g. qdrant."),
    batch: int = typer.Option(500, min=1, max=10_000, help="Records per write."),
    config: Path = ConfigOption,
) -> None:
    """Rebuild the vector index of one store from another (idempotent upserts by id)."""
    settings = _settings(config)
    kinds = (_kind(source), _kind(target))
    if kinds[0] == kinds[1]:
        fail("--from and --to name the same store")

    async def work(a: MemoryStore, b: MemoryStore) -> dict[str, int]:
        total = await a.count()
        with Progress(console=console) as progress:
            task = progress.add_task(f"{a.backend} → {b.backend}", total=total or None)
            done = await copy_store(a, b, batch=batch, progress=lambda n: progress.advance(task, n))
        return dict(done)

    done = _run(settings, kinds, work)
    if done.get("deleted"):
        warning(f"{done['deleted']} deleted memories copied as tombstones (their history)")
    success(f"copied {done.get('records', 0):,} records from {kinds[0]} to {kinds[1]}")
