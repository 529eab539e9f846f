"""The load generators of ``membank bench hotpath``: ``wrk``, or one in Python.

Both send one request again and again over ``connections`` keep-alive connections
for ``seconds``, and give requests/s, p50 and p99. ``wrk`` (C, one thread) is
preferred: on a 2-core machine a Python generator costs about as much CPU per
request as the server it measures, so it is the limit well before a bare Litestar
route is; its own CPU share is reported so the reader can see it (a share near
1.0 means the generator, not the server, set the figure).
"""

from __future__ import annotations

import asyncio
import os
import re
import resource
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass

from membank_server.domain.errors import MembankError

__all__ = ["Load", "LoadResult", "python_load", "wrk_available", "wrk_load"]

_LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
%s
wrk.body = [[%s]]
"""


@dataclass(frozen=True)
class Load:
    """One request and how hard to send it."""

    url: str
    path: str
    body: bytes
    headers: dict[str, str]
    seconds: float
    connections: int


@dataclass
class LoadResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    #: CPU seconds the generator used per wall second (1.0 = one core busy).
    generator_cpu: float


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def wrk_load(load: Load) -> LoadResult:
    """One ``wrk -t1`` run; a non-2xx answer is an error (the figure would be wrong)."""
    extra = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in load.headers.items())
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(_LUA % (extra, load.body.decode()))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    try:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{load.connections}", f"-d{max(1, round(load.seconds))}s",
             "--latency", "-s", fh.name, load.url + load.path],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    finally:
        os.unlink(fh.name)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        raise MembankError(f"wrk saw error answers:\n{out}")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if rps is None:
        raise MembankError(f"wrk printed no rate:\n{out}")

    def pct(p: str) -> float:
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        if m is None:
            raise MembankError(f"wrk printed no p{p}:\n{out}")
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    return LoadResult(float(rps.group(1)), pct("50"), pct("99"), round(cpu / wall, 3))


def python_load(load: Load) -> LoadResult:
    """The same run from this process: asyncio streams, HTTP/1.1 keep-alive."""
    return asyncio.run(_python_load(load))


async def _python_load(load: Load) -> LoadResult:
    host, _, port = load.url.removeprefix("http://").partition(":")
    head = (
        f"POST {load.path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Content-Type: application/json\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in load.headers.items())
        + f"Content-Length: {len(load.body)}\r\n\r\n"
    ).encode()
    request = head + load.body
    latencies: list[float] = []
    errors: list[bytes] = []
    stop = time.perf_counter() + load.seconds

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while (now := time.perf_counter()) < stop:
                writer.write(request)
                status = await reader.readuntil(b"\r\n")
                length = 0
                while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - now)
                if not status.split(b" ", 2)[1].startswith(b"2"):
                    errors.append(status)
                    return
        finally:
            writer.close()

    cpu, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(load.connections)))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    if errors:
        raise MembankError(f"the server answered {errors[0]!r} during the run")
    ordered = sorted(latencies)

    def pct(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)

    return LoadResult(round(len(ordered) / wall, 1), pct(0.5), pct(0.99), round(cpu / wall, 3))
