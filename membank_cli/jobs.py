"""``membank jobs list|show|retry|purge``: the background jobs of a running server, over HTTP."""

from __future__ import annotations

from typing import Any

import typer

from membank_cli._server import KeyOption, UrlOption, checked, reaching, server_client
from membank_cli.application import Application

__all__ = ["cli"]

cli = typer.Typer(
    help="Follow, retry and forget the background jobs of a running server (async writes, "
    "fact extraction, erasures) and their dead-letter list.",
    no_args_is_help=True,
)
JsonOption = typer.Option(False, "--json", help="Print what the server answered, as JSON.")


def _call(url: str, key: str | None, method: str, path: str, **params: Any) -> Any:
    with reaching(url), server_client(url, key) as http:
        r = http.request(method, path, params={k: v for k, v in params.items() if v is not None})
        return None if r.status_code == 204 else checked(r)


def _job_row(j: dict[str, Any]) -> tuple[Any, ...]:
    return (j["id"], j["kind"], j["status"], j["total"], j["done"], j["dead"], j["created_at"])


_JOB_COLUMNS = ["job", "kind", "status", "items", "done", "dead", "created"]


@cli.command(name="list")
def list_jobs(
    ctx: typer.Context,
    user: str = typer.Option(None, "--user", "-u", help="The user whose jobs to list."),
    dead: bool = typer.Option(False, "--dead", help="List dead-letter items instead of jobs."),
    limit: int = typer.Option(100, min=1, max=10_000, help="At most this many, newest first."),
    url: str = UrlOption,
    key: str | None = KeyOption,
    as_json: bool = JsonOption,
) -> None:
    """A user's jobs, newest first; with --dead, the dead-letter list (everyone's without
    --user: an admin key)."""
    app = Application.of(ctx)
    if dead:
        items = _call(url, key, "GET", "/v1/jobs/dead", user_id=user, limit=limit)["items"]
        if as_json:
            app.json(items)
            return
        app.table(
            "dead-letter items",
            ["job", "index", "kind", "user", "attempts", "error", "at"],
            [
                (d["job_id"], d["index"], d["kind"], d["user_id"], d["attempts"],
                 f"{d['error']['code']}: {d['error']['message']}", d["at"])
                for d in items
            ],
        )  # fmt: skip
        return
    if user is None:
        app.abort("give --user (jobs are listed per user), or --dead")
    jobs = _call(url, key, "GET", "/v1/jobs", user_id=user, limit=limit)["items"]
    if as_json:
        app.json(jobs)
        return
    app.table(f"jobs of {user}", _JOB_COLUMNS, [_job_row(j) for j in jobs])


@cli.command()
def show(
    ctx: typer.Context,
    job_id: str = typer.Argument(..., help="The job's id."),
    items: int = typer.Option(20, min=0, max=10_000, help="Items to show, from the first."),
    failed: bool = typer.Option(False, "--failed", help="Show only items that failed."),
    url: str = UrlOption,
    key: str | None = KeyOption,
    as_json: bool = JsonOption,
) -> None:
    """A job's status and counts, and its items' results (memory id or error)."""
    app = Application.of(ctx)
    job = _call(url, key, "GET", f"/v1/jobs/{job_id}", item_limit=max(items, 1))
    if as_json:
        app.json(job)
        return
    app.table(f"job {job_id}", _JOB_COLUMNS, [_job_row(job)])
    rows = [
        (i["index"], i["user_id"], i["state"], i["attempts"], i["memory_id"] or "",
         f"{i['error']['code']}: {i['error']['message']}" if i["error"] else "")
        for i in (job["items"] or [])[:items]
        if not failed or i["error"]
    ]  # fmt: skip
    if rows:
        app.table("items", ["index", "user", "state", "attempts", "memory", "error"], rows)


@cli.command()
def retry(
    ctx: typer.Context,
    job_id: str = typer.Argument(..., help="The job's id."),
    index: int = typer.Option(None, min=0, help="Only this item (by index)."),
    url: str = UrlOption,
    key: str | None = KeyOption,
) -> None:
    """Put a job's dead items (or one) back in the queue."""
    app = Application.of(ctx)
    path = f"/v1/jobs/{job_id}" + (f"/items/{index}" if index is not None else "") + "/retry"
    count = _call(url, key, "POST", path)["retried"]
    app.success(f"{count} item(s) of job {job_id} queued again")


@cli.command()
def purge(
    ctx: typer.Context,
    job_id: str = typer.Argument(..., help="The job's id."),
    url: str = UrlOption,
    key: str | None = KeyOption,
) -> None:
    """Forget a finished job: its results and its dead-letter items."""
    app = Application.of(ctx)
    _call(url, key, "DELETE", f"/v1/jobs/{job_id}")
    app.success(f"job {job_id} forgotten")
