"""``membank serve`` with faults injected at the service boundary, for leak tests.

Run as ``python -m tests.support.faulty_serve``: the real server, but

* storing a memory whose content starts with ``INJECT-FAULT`` raises a RuntimeError
  whose message quotes the content and the user (the worst an unexpected error can do);
* authenticating a token that starts with ``mbk_faultyfaulty_`` raises a RuntimeError
  quoting the token (an unexpected error on the security path, bearer in hand).

What the log then holds must still be free of both.
"""

from __future__ import annotations

import sys
from typing import Any

from membank_cli.app import main
from membank_server.services.access import AccessService
from membank_server.services.memories import MemoryService

_remember = MemoryService.remember
_authenticate = AccessService.authenticate


async def _faulty_remember(self: MemoryService, item: Any, key: str | None = None) -> Any:
    if item.content.startswith("INJECT-FAULT"):
        raise RuntimeError(f"injected failure while storing {item.content!r} for {item.user_id}")
    return await _remember(self, item, key)


async def _faulty_authenticate(self: AccessService, token: str) -> Any:
    if token.startswith("mbk_faultyfaulty_"):
        raise RuntimeError(f"injected failure authenticating {token}")
    return await _authenticate(self, token)


MemoryService.remember = _faulty_remember  # type: ignore[method-assign]
AccessService.authenticate = _faulty_authenticate  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.argv = ["membank", "serve"]
    main()
