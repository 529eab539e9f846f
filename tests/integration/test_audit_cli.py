"""``membank audit tail|export`` as an operator runs them: real processes on real logs.

Entries are appended with FileAuditLog into ``<data folder>/audit.log`` (the
default file sink), then ``python -m membank_cli`` reads them with only
``MEMBANK_STORAGE__EDGE__PATH`` pointing at the folder; one test does the same
with the PostgreSQL sink of scripts/services.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import queue
import signal
import stat
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import asyncpg  # type: ignore[import-untyped]
import pytest

from membank_server.domain.security import AuditEntry
from membank_server.security.audit_file import FileAuditLog
from membank_server.security.audit_pg import PgAuditLog

__all__: list[str] = []

T0 = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


def _entry(
    n: int, target: str = "user:alice", step: timedelta = timedelta(minutes=1), **details: object
) -> AuditEntry:
    return AuditEntry(
        at=T0 + n * step,
        request_id=f"req-{n}",
        actor=f"key_{n}",
        client="198.51.100.4",
        action="memories.erase",
        target=target,
        result="ok",
        status=200,
        details=details,
    )


def _append(folder: Path, *entries: AuditEntry) -> None:
    async def write() -> None:
        log = FileAuditLog(folder / "audit.log")
        await log.start()
        try:
            for entry in entries:
                await log.append(entry)
        finally:
            await log.aclose()

    asyncio.run(write())


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    _append(
        data,
        _entry(0, reason="gdpr"),
        _entry(1, target='=HYPERLINK("http://x")'),
        _entry(2, target="[bold red]alice[/]", deleted=3),
    )
    return data


def _env(folder: Path) -> dict[str, str]:
    # Nothing of the caller's membank settings may leak in.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMBANK_")}
    return {**env, "MEMBANK_STORAGE__EDGE__PATH": str(folder), "COLUMNS": "200"}


def _membank(
    folder: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "membank_cli", *args],
        env={**_env(folder), **(env or {})},
        cwd=folder.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_tail_json_prints_the_last_entries_as_json_lines(folder: Path) -> None:
    done = _membank(folder, "audit", "tail", "-n", "2", "--json")

    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [e["request_id"] for e in lines] == ["req-1", "req-2"]
    assert lines[1] == {
        "at": "2025-06-01T09:02:00Z",
        "request_id": "req-2",
        "actor": "key_2",
        "client": "198.51.100.4",
        "action": "memories.erase",
        "target": "[bold red]alice[/]",
        "result": "ok",
        "status": 200,
        "details": {"deleted": 3},
    }


def test_tail_table_shows_the_fields_verbatim(folder: Path) -> None:
    done = _membank(folder, "audit", "tail", "--lines", "5")

    assert done.returncode == 0, done.stderr
    assert "request id" in done.stdout and "2025-06-01 09:00:00" in done.stdout
    assert all(f"req-{n}" in done.stdout for n in range(3))
    # A request's text is shown as text, never rendered as Rich markup.
    assert "[bold red]alice[/]" in done.stdout


def test_export_csv_to_a_private_file_with_the_count_on_stderr(folder: Path) -> None:
    out = folder.parent / "export.csv"
    done = _membank(folder, "audit", "export", "--format", "csv", "-o", str(out))

    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert "exported 3 audit entries" in done.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["request_id"] for r in rows] == ["req-0", "req-1", "req-2"]
    assert rows[0]["at"] == "2025-06-01T09:00:00Z"
    assert json.loads(rows[0]["details"]) == {"reason": "gdpr"}
    assert rows[2]["status"] == "200"
    # A spreadsheet must not run a cell a client chose.
    assert rows[1]["target"] == '\'=HYPERLINK("http://x")'


def test_export_jsonl_of_a_time_range_to_stdout(folder: Path) -> None:
    done = _membank(
        folder, "audit", "export", "--since", "2025-06-01T09:01:00", "--until",
        "2025-06-01T11:02:00+02:00",
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["request_id"] for line in done.stdout.splitlines()] == ["req-1"]
    assert "exported 1 audit entries" in done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["export", "--since", "last tuesday"],
        ["export", "--until", "2025-13-45"],
    ],
)
def test_a_bad_time_is_one_line_and_exit_2(folder: Path, args: list[str]) -> None:
    done = _membank(folder, "audit", *args)

    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "ISO-8601" in lines[0] and args[2] in lines[0], done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_the_postgres_sink_is_read_from_its_table(tmp_path: Path, pg_dsn: str) -> None:
    schema = f"t_{uuid4().hex[:12]}"

    async def write() -> None:
        log = PgAuditLog(pg_dsn, schema=schema)
        await log.start()
        try:
            for n in range(3):
                await log.append(_entry(n, k=n))
        finally:
            await log.aclose()

    async def drop() -> None:
        conn = await asyncpg.connect(pg_dsn)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    asyncio.run(write())
    try:
        env = {
            "MEMBANK_SECURITY__AUDIT__SINK": "postgres",
            "MEMBANK_SECURITY__AUDIT__DSN": pg_dsn,
            "MEMBANK_SECURITY__AUDIT__SCHEMA": schema,
        }
        done = _membank(tmp_path / "data", "audit", "tail", "-n", "2", "--json", env=env)
        assert done.returncode == 0, done.stderr
        got = [json.loads(line) for line in done.stdout.splitlines()]
        assert [(e["request_id"], e["details"]) for e in got] == [
            ("req-1", {"k": 1}),
            ("req-2", {"k": 2}),
        ]
    finally:
        asyncio.run(drop())


def test_tail_follow_prints_new_entries_once_until_interrupted(tmp_path: Path) -> None:
    folder, second = tmp_path / "data", timedelta(seconds=1)
    # Seconds apart: the ones tail -n 1 leaves out are within --follow's look-back.
    _append(folder, *(_entry(n, step=second) for n in range(3)))
    proc = subprocess.Popen(
        [sys.executable, "-m", "membank_cli", "audit", "tail", "-n", "1", "-f", "--json"],
        env=_env(folder),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        assert json.loads(lines.get(timeout=30))["request_id"] == "req-2"
        _append(folder, _entry(3, step=second), _entry(4, step=second))
        later = [json.loads(lines.get(timeout=30))["request_id"] for _ in range(2)]
        assert later == ["req-3", "req-4"]
        time.sleep(1.2)  # two more polls: nothing may be printed again
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        reader.join(timeout=10)
        assert proc.stdout is not None and proc.stderr is not None
        err = proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
    assert "Traceback" not in err, err
    assert lines.empty(), list(lines.queue)
