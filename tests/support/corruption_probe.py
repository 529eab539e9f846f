"""Read a (possibly damaged) embedded store the way the server does, in its own process.

Run as ``python -m tests.support.corruption_probe FOLDER ORIGINALS.json``: opens the
Edge store at FOLDER (its start-up check included), reads every memory the
originals name by id, lists and searches every user, runs ``verify``, and prints one
JSON object comparing what was served with the originals. Run in a child process so
that a store that crashes or allocates without bound takes only this child down.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from membank_server.domain.errors import IntegrityError, MembankError
from membank_server.domain.model import VectorQuery
from membank_server.storage.edge import EdgeStore


def _close(a: list[float], b: list[float]) -> bool:
    if len(a) != len(b):
        return False
    return all(math.isclose(x, y, abs_tol=1e-3) for x, y in zip(a, b, strict=True))


async def main(folder: Path, originals: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"opened": False, "get": {}, "altered": [], "verify": []}
    store = EdgeStore(folder, dimension=originals["dimension"])
    try:
        await store.start()
    except MembankError as exc:
        out["error"] = exc.message
        return out
    out["opened"] = True
    now = datetime.now(UTC)
    try:
        for memory_id, want in originals["memories"].items():
            try:
                got = (await store.get(want["user_id"], [UUID(memory_id)])).get(UUID(memory_id))
            except IntegrityError:
                out["get"][memory_id] = "integrity"
                continue
            if got is None:
                out["get"][memory_id] = "missing"
                continue
            ok = (
                got.memory.content == want["content"]
                and dict(got.memory.metadata) == want["metadata"]
                and _close(got.vector, want["vector"])
            )
            try:
                events = await store.history(want["user_id"], UUID(memory_id))
            except IntegrityError:
                out["get"][memory_id] = "integrity"
                continue
            history = [h.content for h in events]
            if any(c not in want["history"] for c in history):
                out["altered"].append(memory_id)  # an event served that was never written
            ok = ok and history == want["history"]
            out["get"][memory_id] = "ok" if ok else "altered"
            if not ok and got.memory.content != want["content"]:
                out["altered"].append(memory_id)
        for user in originals["users"]:
            page = await store.list_page(user, now=now, limit=10_000)
            hits = await store.search(VectorQuery(user, originals["probe"], 50, now))
            for memory in [*page.items, *(h.memory for h in hits)]:
                want = originals["memories"].get(str(memory.id))
                if want is None or memory.user_id != user or memory.content != want["content"]:
                    out["altered"].append(str(memory.id))
        report = await store.verify()
        out["verify"] = sorted({d.memory_id for d in report.damaged})
        out["store_problems"] = report.store_problems
    finally:
        await store.aclose()
    return out


if __name__ == "__main__":
    result = asyncio.run(main(Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text())))
    print(json.dumps(result))
