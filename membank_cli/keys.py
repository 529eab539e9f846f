"""``membank keys create|list|revoke|team-add|team-remove|team-list`` and the data keys.

API keys and teams are managed in the configured key store directly (the SQLite
file beside the data, or PostgreSQL), so this works with the server stopped and
needs no admin key: access to the store is the authority. A running server sees
a change within ``security.key_cache_seconds``. Every change is appended to the
audit log as actor ``cli:<os user>``.

``generate-data-key`` and ``rotate-data-key`` manage field-encryption keys; the
rotation runs inside the running server (over HTTP, with an admin key), so reads
keep working while every record is re-encrypted.
"""

from __future__ import annotations

import getpass
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import typer
from rich.progress import Progress

from membank_cli._server import KeyOption, UrlOption, checked, reaching, server_client
from membank_cli.application import Application, ConfigOption
from membank_cli.output import Output
from membank_server.domain.errors import MembankError
from membank_server.domain.security import ApiKey, AuditEntry, Role, Scope
from membank_server.services.access import AccessService, KeySpec
from membank_server.services.upkeep import KEY_RELOAD_SECONDS

__all__ = ["cli"]

cli = typer.Typer(help="API keys, teams and data-encryption keys.", no_args_is_help=True)
_T = TypeVar("_T")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _access(
    app: Application,
    work: Callable[[AccessService], Awaitable[_T]],
    action: str = "",
    target: Callable[[_T], str] | None = None,
) -> _T:
    """Run ``work`` over the key store; audit it as ``action`` when given."""

    async def run() -> _T:
        result = await work(AccessService(await app.key_store(), cache_seconds=0.001))
        if action:
            audit = await app.audit_log(append=True)
            await audit.append(
                AuditEntry(
                    at=datetime.now(UTC),
                    request_id="",
                    actor=f"cli:{getpass.getuser()}",
                    client="local",
                    action=action,
                    target=target(result) if target else "",
                    result="ok",
                    status=0,
                )
            )
        return result

    return app.run(run)


def _row(k: ApiKey) -> dict[str, Any]:
    return {
        "id": k.id,
        "name": k.name,
        "role": k.role.value,
        "scope": k.scope.value,
        "user_id": k.user_id,
        "team": k.team,
        "created_at": k.created_at.isoformat(),
        "expires_at": k.expires_at.isoformat() if k.expires_at else None,
        "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
        "rate_per_second": k.rate_per_second,
        "burst": k.burst,
    }


def _expiry(expires_in: str | None) -> datetime | None:
    if expires_in is None:
        return None
    number, unit = expires_in[:-1], expires_in[-1:]
    if unit not in _UNITS or not number.isdigit() or int(number) <= 0:
        raise MembankError("--expires-in is a positive number with s, m, h or d: 90d, 12h")
    return datetime.now(UTC) + timedelta(seconds=int(number) * _UNITS[unit])


@cli.command()
def create(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="What the key is for (shown in lists and the audit)."),
    role: Role = typer.Option(Role.USER, help="user, or admin (keys, teams, operations)."),
    scope: Scope = typer.Option(Scope.OWN, help="own: one user; team: a team's users; all."),
    user: str = typer.Option(None, "--user", help="The user_id an own key is bound to."),
    team: str = typer.Option(None, "--team", help="The team a team key is bound to."),
    expires_in: str = typer.Option(None, help="Lifetime, e.g. 90d or 12h [default: none]."),
    rate: float = typer.Option(None, help="Requests per second [default: the server's]."),
    burst: int = typer.Option(None, help="Burst size [default: the server's]."),
    as_json: bool = typer.Option(False, "--json"),
    config: Path | None = ConfigOption,
) -> None:
    """Create an API key; its secret is printed once and never stored."""
    app = Application.of(ctx)
    spec = KeySpec(
        name,
        role,
        Scope.ALL if role is Role.ADMIN else scope,
        user,
        team,
        _expiry(expires_in),
        rate,
        burst,
    )

    async def work(access: AccessService) -> tuple[ApiKey, str]:
        return await access.create_key(spec)

    key, secret = _access(app, work, "key.create", lambda r: f"key:{r[0].id}")
    if as_json:
        app.json({"key": _row(key), "secret": secret})
        return
    app.success(f"created key {key.id} ({key.role.value}, scope {key.scope.value})")
    app.console.print(f"\n    {secret}\n", highlight=False, soft_wrap=True)
    app.warning("this secret is shown once; only its hash is stored")


@cli.command(name="list")
def list_keys(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json"),
    config: Path | None = ConfigOption,
) -> None:
    """Every API key, revoked and expired ones too (never their secrets)."""
    app = Application.of(ctx)

    async def work(access: AccessService) -> list[ApiKey]:
        return await access.list_keys()

    rows = [_row(k) for k in _access(app, work)]
    if as_json:
        app.json(rows)
        return
    columns = ["id", "name", "role", "scope", "user_id", "team", "expires_at", "revoked_at"]
    app.table("API keys", columns, ([r[c] or "" for c in columns] for r in rows))


@cli.command()
def revoke(
    ctx: typer.Context, key_id: str = typer.Argument(...), config: Path | None = ConfigOption
) -> None:
    """Revoke an API key (the last usable admin key cannot be revoked)."""
    app = Application.of(ctx)

    async def work(access: AccessService) -> ApiKey:
        return await access.revoke(key_id)

    _access(app, work, "key.revoke", lambda k: f"key:{k.id}")
    app.success(f"revoked key {key_id}")


@cli.command(name="team-add")
def team_add(
    ctx: typer.Context, team: str, user_id: str, config: Path | None = ConfigOption
) -> None:
    """Let the team's keys act for this user."""
    app = Application.of(ctx)

    async def work(access: AccessService) -> None:
        await access.add_member(team, user_id)

    _access(app, work, "team.add_member", lambda _: f"team={team} user_id={user_id}")
    app.success(f"{user_id} is in team {team}")


@cli.command(name="team-remove")
def team_remove(
    ctx: typer.Context, team: str, user_id: str, config: Path | None = ConfigOption
) -> None:
    """Stop the team's keys acting for this user."""
    app = Application.of(ctx)

    async def work(access: AccessService) -> None:
        await access.remove_member(team, user_id)

    _access(app, work, "team.remove_member", lambda _: f"team={team} user_id={user_id}")
    app.success(f"{user_id} left team {team}")


@cli.command(name="team-list")
def team_list(ctx: typer.Context, team: str, config: Path | None = ConfigOption) -> None:
    """The users a team's keys may act for."""
    app = Application.of(ctx)

    async def work(access: AccessService) -> list[str]:
        return await access.members(team)

    for user_id in _access(app, work):
        print(user_id)


@cli.command(name="generate-data-key")
def generate_data_key(
    ctx: typer.Context,
    keys_file: Path = typer.Option(
        None, "--keys-file", help="Add to this keys file [default: security.encryption.keys_file]."
    ),
    config: Path | None = ConfigOption,
) -> None:
    """Add a new field-encryption key to the keys file (created 0600) and make it active."""
    app = Application.of(ctx)
    path = keys_file or app.settings.security.encryption.keys_file
    if path is None:
        app.abort("give --keys-file or set security.encryption.keys_file")
    key_id = app.add_data_key(Path(path))
    app.success(f"data key {key_id} is now active in {path}")


@cli.command(name="rotate-data-key")
def rotate_data_key(
    ctx: typer.Context,
    generate: bool = typer.Option(
        False, "--generate", help="First add a new active key to the keys file."
    ),
    retire: bool = typer.Option(
        False, "--retire", help="Then remove the old keys from the keys file."
    ),
    url: str = UrlOption,
    key: str = KeyOption,
    config: Path | None = ConfigOption,
) -> None:
    """Re-encrypt every record with the active data key, in the running server.

    Reads keep working throughout; with --retire the keys no record uses any
    more are removed from the keys file afterwards.
    """
    app = Application.of(ctx)
    keys_file = app.settings.security.encryption.keys_file
    if (generate or retire) and keys_file is None:
        app.abort("--generate and --retire need security.encryption.keys_file")
    if generate:
        assert keys_file is not None
        app.success(f"data key {app.add_data_key(Path(keys_file))} is now active in {keys_file}")
        # Every instance re-reads the file this often: wait, so none seals with the old
        # key once the rotation has begun (or it could be retired while still in use).
        with app.status("waiting for every instance to load the new key"):
            time.sleep(KEY_RELOAD_SECONDS + 1)
    with reaching(url), server_client(url, key) as http:
        started = checked(http.post("/v1/admin/encryption/rotate"))["started_at"]
        state = _follow(app, http, started)
    rotation = state["rotation"]
    if rotation["state"] != "done":
        app.abort(f"rotation {rotation['state']}: {rotation.get('error')}")
    app.success(f"{rotation['done']} records re-encrypted; keys in use: {state['usage']}")
    if retire:
        assert keys_file is not None
        unused = {k for k, n in state["usage"].items() if n == 0}
        in_use = set(state["usage"]) - unused - {"plaintext"}
        removed = app.retire_data_keys(Path(keys_file), keep=in_use | {state["active_key"]})
        app.success(f"retired {', '.join(removed) or 'no keys'} from {keys_file}")


def _follow(out: Output, http: httpx.Client, started_at: str) -> Any:
    """Poll the rotation this command started (by its start time) until it ends.

    Point --url at one instance: another one knows nothing of this run.
    """
    strangers = 0
    with Progress(console=out.console, transient=True) as progress:
        task = progress.add_task("re-encrypting", total=None)
        while True:
            state = checked(http.get("/v1/admin/encryption"))
            r = state["rotation"]
            if r["started_at"] != started_at:
                strangers += 1
                if strangers > 25:
                    raise MembankError(
                        "the server reports another rotation than the one started: "
                        "point --url at a single instance (or it restarted mid-run)"
                    )
            else:
                progress.update(task, total=r["total"] or None, completed=r["done"])
                if r["finished_at"] is not None:
                    return state
            time.sleep(0.2)
