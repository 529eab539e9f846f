"""Talking to a running membank server: its URL and admin key options, one client."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import typer

from membank_server.domain.errors import MembankError

__all__ = ["KeyOption", "UrlOption", "auth_headers", "checked", "reaching", "server_client"]

UrlOption = typer.Option("http://127.0.0.1:8080", "--url", help="The running membank server.")
KeyOption = typer.Option(
    None, "--api-key", envvar="MEMBANK_API_KEY", help="An admin API key [env: MEMBANK_API_KEY]."
)


def auth_headers(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def server_client(url: str, key: str | None) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=60, headers=auth_headers(key))


@contextmanager
def reaching(url: str) -> Iterator[None]:
    """A server that cannot be reached is one line naming it, not a traceback."""
    try:
        yield
    except httpx.TransportError as exc:
        raise MembankError(f"cannot reach the server at {url}: {exc}") from exc


def checked(r: httpx.Response) -> Any:
    """The JSON of a success; a one-line failure naming the server's message otherwise."""
    if r.status_code >= 400:
        try:
            message = r.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = r.text[:200]
        raise MembankError(
            f"{r.request.method} {r.request.url.path} answered {r.status_code}: {message}"
        )
    return r.json()
