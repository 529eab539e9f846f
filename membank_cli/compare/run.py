"""``membank bench compare``, run: the same workload on membank and on mem0.

membank runs as a fresh ``membank serve`` on a free loopback port and is driven
over HTTP; then, with that server stopped so each side has the machine to itself,
mem0 open source (``pip install 'membank[compare]'``) runs as a library in a
process of its own, with its default local Qdrant store, ``infer=False`` and its
``openai`` embedder pointed at a local server of membank's own ONNX model. Same
texts, same questions, same embedder, same machine; figures, then ratios.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from membank_cli._local_server import free_port, local_server
from membank_cli.compare.measure import SideReport, measure
from membank_cli.compare.membank_side import MembankSide
from membank_cli.compare.workload import ComparePlan, Workload, make_workload
from membank_server.domain.errors import MembankError

__all__ = ["CompareReport", "run_compare"]


@dataclass(frozen=True)
class CompareReport:
    plan: ComparePlan
    membank: SideReport
    mem0: SideReport

    @property
    def ratios(self) -> dict[str, float | None]:
        """membank against mem0, each written so that above 1 favours membank."""
        m, o = self.membank, self.mem0

        def ratio(a: float, b: float) -> float | None:
            return round(a / b, 2) if b else None

        return {
            "ingest_rate": ratio(m.ingest_per_s, o.ingest_per_s),
            "concurrent_ingest_rate": ratio(m.concurrent_adds_per_s, o.concurrent_adds_per_s),
            "search_p50_lower_by": ratio(o.search_p50_ms, m.search_p50_ms),
            "search_p99_lower_by": ratio(o.search_p99_ms, m.search_p99_ms),
            "concurrent_search_qps": ratio(m.concurrent_search_qps, o.concurrent_search_qps),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan": asdict(self.plan),
            "membank": asdict(self.membank),
            "mem0": asdict(self.mem0),
            "ratios": self.ratios,
        }


def _wait(url: str, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise MembankError(f"the {what} exited with code {proc.returncode} before it was ready")
        try:
            httpx.post(url, json={"input": "ready?"}, timeout=2).raise_for_status()
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise MembankError(f"the {what} was not ready within 60 s")


@contextmanager
def _embed_server(log: Path) -> Iterator[str]:
    """membank's ONNX embedder behind an OpenAI-compatible API on a loopback port."""
    port = free_port()
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "membank_cli.compare.embed_server:create_app",
                *("--host", "127.0.0.1", "--port", str(port)),
                *("--loop", "uvloop", "--http", "httptools", "--no-access-log"),
                *("--log-level", "warning"),
            ],
            stdout=sink,
            stderr=sink,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(f"{url}/v1/embeddings", proc, "embeddings server")
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


def _membank(plan: ComparePlan, workload: Workload, work: Path) -> SideReport:
    key = "membank-compare-" + secrets.token_urlsafe(24)
    env = {
        "MEMBANK_SECURITY__ADMIN_KEY": key,
        "MEMBANK_SECURITY__RATE_LIMIT__REQUESTS_PER_SECOND": "10000000",
        "MEMBANK_SECURITY__RATE_LIMIT__BURST": "10000000",
        "MEMBANK_CACHE__ENABLED": "true" if plan.membank_cache else "false",
    }
    with local_server(work / "membank", env, quiet=True) as server:
        side = MembankSide(server.url, key, plan.threads)
        try:
            return measure(side, "membank", workload, plan.threads)
        finally:
            side.close()


def _mem0(plan: ComparePlan, workload: Workload, work: Path) -> SideReport:
    (work / "mem0").mkdir()
    workload_file, out = work / "workload.json", work / "mem0-report.json"
    workload_file.write_text(json.dumps(workload.to_dict()))
    log = work / "mem0.log"
    with _embed_server(work / "embed.log") as embed_url, log.open("wb") as sink:
        code = subprocess.run(
            [
                sys.executable,
                "-m",
                "membank_cli.compare.mem0_side",
                str(workload_file),
                str(out),
                *("--embed-url", embed_url, "--data", str(work / "mem0")),
                *("--threads", str(plan.threads)),
            ],
            stdout=sink,
            stderr=sink,
            env={**os.environ, "MEM0_TELEMETRY": "False"},
        ).returncode
    if code != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise MembankError(f"the mem0 run failed (exit {code}):\n{tail}")
    return SideReport(**json.loads(out.read_text()))


def run_compare(plan: ComparePlan, console: Console) -> CompareReport:
    """Both sides on one workload, one after the other, each with the machine to itself."""
    if importlib.util.find_spec("mem0") is None:
        raise MembankError("bench compare needs mem0: pip install 'membank[compare]'")
    workload = make_workload(plan)
    with tempfile.TemporaryDirectory(prefix="membank-compare-") as tmp:
        work = Path(tmp)
        with console.status("membank: ingest, search, concurrent search and ingest"):
            membank = _membank(plan, workload, work)
        with console.status("mem0: the same"):
            mem0 = _mem0(plan, workload, work)
    return CompareReport(plan, membank, mem0)
