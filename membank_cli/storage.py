"""``membank storage verify|reindex``: compare two stores, rebuild one from the other.

Both open the stores named in the settings directly (``storage.postgres``,
``storage.qdrant``, ``storage.edge``), so an embedded Edge store needs its server
stopped; PostgreSQL and a Qdrant server can be checked while serving.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from membank_cli.application import Application, ConfigOption
from membank_server.domain.ports import MemoryStore
from membank_server.services.storage_ops import VerifyReport, copy_store, verify_stores

__all__ = ["cli"]

cli = typer.Typer(
    help="Compare the stores of a hybrid setup, or rebuild one from another.", no_args_is_help=True
)
_ALIASES = {
    "postgres": "pgvector",
    "pg": "pgvector",
    "pgvector": "pgvector",
    "qdrant": "qdrant",
    "edge": "edge",
}


def _kind(app: Application, name: str) -> str:
    if name not in _ALIASES:
        app.abort(f"unknown store {name!r}: postgres, qdrant or edge")
    return _ALIASES[name]


def _progress(console: Console) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.completed:,} records"),
        TimeElapsedColumn(),
        console=console,
    )


async def _stores(app: Application, kinds: tuple[str, str]) -> tuple[MemoryStore, MemoryStore]:
    """Both stores, started in order (and closed in reverse when the run ends)."""
    return await app.single_store(kinds[0]), await app.single_store(kinds[1])


@cli.command()
def verify(
    ctx: typer.Context,
    left: str = typer.Option(None, help="First store [default: storage.hybrid.primary]."),
    right: str = typer.Option(None, help="Second store [default: storage.hybrid.secondary]."),
    config: Path | None = ConfigOption,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Compare two stores record by record: ids, owners, content hashes, versions."""
    app = Application.of(ctx)
    hybrid = app.settings.storage.hybrid
    kinds = (_kind(app, left or hybrid.primary), _kind(app, right or hybrid.secondary))

    async def work() -> VerifyReport:
        a, b = await _stores(app, kinds)
        with _progress(app.console) as progress:
            task = progress.add_task("reading both stores")
            return await verify_stores(a, b, progress=lambda n: progress.advance(task, n))

    report = app.run(work)
    if as_json:
        app.json(
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
        app.table(
            f"storage verify: {report.left} vs {report.right}",
            ["", report.left, report.right],
            [
                ("records (incl. deleted)", report.left_records, report.right_records),
                ("users", report.users, ""),
                ("users differing", report.users_differing, ""),
            ],
        )
        if report.differences:
            app.table(
                "differences",
                ["id", "user", "problem"],
                [(d.id, d.user_id, d.problem) for d in report.differences],
            )
    if report.same:
        app.success("the stores hold the same records")
    else:
        raise typer.Exit(1)


@cli.command()
def reindex(
    ctx: typer.Context,
    source: str = typer.Option(..., "--from", help="The store of truth, e.g. postgres."),
    target: str = typer.Option(..., "--to", help="The store to rebuild, e.g. qdrant."),
    batch: int = typer.Option(500, min=1, max=10_000, help="Records per write."),
    config: Path | None = ConfigOption,
) -> None:
    """Rebuild the vector index of one store from another (idempotent upserts by id)."""
    app = Application.of(ctx)
    kinds = (_kind(app, source), _kind(app, target))
    if kinds[0] == kinds[1]:
        app.abort("--from and --to name the same store")

    async def work() -> dict[str, int]:
        a, b = await _stores(app, kinds)
        total = await a.count()
        with Progress(console=app.console) as progress:
            task = progress.add_task(f"{a.backend} → {b.backend}", total=total or None)
            done = await copy_store(
                a,
                b,
                batch=batch,
                progress=lambda n: progress.advance(task, n),
                sealed=app.sealing(b),
            )
        return dict(done)

    done = app.run(work)
    if done.get("deleted"):
        app.warning(f"{done['deleted']} deleted memories copied as tombstones (their history)")
    app.success(f"copied {done.get('records', 0):,} records from {kinds[0]} to {kinds[1]}")
