"""Blocking calls in a worker thread that finish before a cancelled caller moves on."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["in_thread"]

_T = TypeVar("_T")


async def in_thread(fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """``asyncio.to_thread``, except that when the caller is cancelled it waits for the
    thread's call to end before the cancellation goes on.

    A thread cannot be stopped: with plain ``to_thread`` a cancelled put would close its
    file descriptor (or abort its multipart upload) while the thread still writes to it
    (or uploads a part), and a reused descriptor number would take the stray bytes.
    """
    call = asyncio.ensure_future(asyncio.to_thread(fn, *args, **kwargs))
    try:
        return await asyncio.shield(call)
    except asyncio.CancelledError:
        await asyncio.wait({call})
        raise
