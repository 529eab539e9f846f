"""The framework ceiling for ``membank bench cache``: bare Litestar, one dict.

A POST endpoint that decodes the same request body the search route takes and
answers a payload kept in memory, served by the same uvicorn settings: what
Litestar itself costs per request on this machine, with no membank code at all.
"""

from __future__ import annotations

import os
from typing import Any

import msgspec
from litestar import Litestar, post

__all__ = ["create_app"]


def create_app() -> Litestar:
    with open(os.environ["MEMBANK_CEILING_PAYLOAD"], "rb") as fh:
        payload: dict[str, Any] = msgspec.json.decode(fh.read())

    @post("/v1/search", status_code=200, sync_to_thread=False)
    def search(data: dict[str, Any]) -> dict[str, Any]:
        return payload

    return Litestar(route_handlers=[search], logging_config=None)
