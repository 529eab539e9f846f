"""mem0 open source as a library, measured in a process of its own.

``python -m membank_cli.compare.mem0_side WORKLOAD OUT --embed-url URL --data DIR``
runs the same phases as membank's side (``measure``) on ``mem0.Memory`` with
its default local Qdrant store (in ``DIR``), ``add(..., infer=False)`` (no LLM),
and its ``openai`` embedder pointed at ``URL`` (membank's ONNX model behind an
OpenAI-compatible API), and writes the report to ``OUT`` as JSON.

Its own process, so mem0's settings read at import (telemetry, its home folder)
are set before it is imported, and a guard refuses any connection outside the
loopback range: mem0 sends nothing off this machine, whatever it tries.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import socket
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from membank_cli.compare.measure import measure
from membank_cli.compare.workload import Workload

__all__ = ["Mem0Side", "main", "mem0_config"]

_blocked: list[str] = []


def _loopback_only() -> None:
    """Refuse, and remember, every connection and name lookup that would leave the machine."""
    connect, connect_ex, getaddrinfo = (
        socket.socket.connect,
        socket.socket.connect_ex,
        socket.getaddrinfo,
    )

    def allowed(address: Any) -> bool:
        if not isinstance(address, tuple):
            return True  # a Unix socket
        try:
            return ipaddress.ip_address(address[0]).is_loopback
        except ValueError:
            return str(address[0]) == "localhost"

    def guarded_connect(self: socket.socket, address: Any) -> None:
        if not allowed(address):
            _blocked.append(str(address))
            raise ConnectionRefusedError(f"blocked: {address} is not on this machine")
        connect(self, address)

    def guarded_connect_ex(self: socket.socket, address: Any) -> int:
        if not allowed(address):
            _blocked.append(str(address))
            return 111  # ECONNREFUSED
        return connect_ex(self, address)

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in (None, "localhost") and not allowed((host,)):
            _blocked.append(str(host))
            raise socket.gaierror(f"blocked: {host} is not on this machine")
        return getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = guarded_connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = guarded_connect_ex  # type: ignore[method-assign,assignment]
    socket.getaddrinfo = guarded_getaddrinfo


def mem0_config(embed_url: str, data: Path) -> dict[str, Any]:
    local = {"api_key": "local", "openai_base_url": f"{embed_url}/v1"}
    return {
        "vector_store": {
            "provider": "qdrant",
            "config": {
                "collection_name": "compare",
                "path": str(data / "qdrant"),
                "embedding_model_dims": 384,
            },
        },
        "embedder": {
            "provider": "openai",
            "config": {"model": "all-MiniLM-L6-v2", "embedding_dims": 384, **local},
        },
        # Never called with infer=False, but mem0 builds an LLM client at start.
        "llm": {"provider": "openai", "config": {"model": "none", **local}},
        "history_db_path": str(data / "history.db"),
    }


class Mem0Side:
    def __init__(self, memory: Any) -> None:
        self._m = memory

    def add(self, user_id: str, text: str) -> str:
        result = self._m.add(text, user_id=user_id, infer=False)
        return str(result["results"][0]["id"])

    def search(self, user_id: str, query: str, limit: int) -> list[str]:
        found = self._m.search(query, filters={"user_id": user_id}, top_k=limit)
        return [str(hit["id"]) for hit in found["results"]]

    def exists(self, user_id: str, memory_id: str) -> bool:
        found = self._m.get(memory_id)
        return found is not None and found.get("user_id") == user_id


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Measure mem0 on a compare workload.")
    parser.add_argument("workload", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--embed-url", required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args(argv)
    os.environ["MEM0_TELEMETRY"] = "False"
    os.environ["MEM0_DIR"] = str(args.data / "mem0-home")
    _loopback_only()
    from mem0 import Memory

    memory = Memory.from_config(mem0_config(args.embed_url, args.data))
    workload = Workload.from_dict(json.loads(args.workload.read_text()))
    report = measure(Mem0Side(memory), "mem0", workload, args.threads)
    report.notes["blocked_connections"] = list(_blocked)
    args.out.write_text(json.dumps(asdict(report)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
