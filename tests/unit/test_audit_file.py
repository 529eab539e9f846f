"""FileAuditLog on a temporary file: group commit, permissions, reads, torn lines."""

from __future__ import annotations

import asyncio
import errno
import inspect
import json
import os
import stat
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from membank_server.domain.errors import InvalidInput, StorageUnavailable
from membank_server.domain.security import AuditEntry
from membank_server.security.audit_file import FileAuditLog

__all__: list[str] = []

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def _entry(n: int, at: datetime | None = None, **details: object) -> AuditEntry:
    return AuditEntry(
        at=at or T0 + timedelta(seconds=n),
        request_id=f"req-{n}",
        actor="key_admin",
        client="10.0.0.7",
        action="memory.delete",
        target=f"alice/{n}",
        result="ok",
        status=204,
        details=details,
    )


def _raw(path: Path) -> bytes:
    return path.read_bytes()


def _exists(path: Path) -> bool:
    return path.exists()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "security" / "audit.log"


@pytest.fixture
async def log(path: Path) -> AsyncIterator[FileAuditLog]:
    audit = FileAuditLog(path)
    await audit.start()
    yield audit
    await audit.aclose()


@pytest.fixture
def count_fsyncs(monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    calls: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    return lambda: len(calls)


async def test_concurrent_appends_are_all_written_whole_in_few_fsyncs(
    log: FileAuditLog, path: Path, count_fsyncs: Callable[[], int]
) -> None:
    await asyncio.gather(*(log.append(_entry(n, note="x" * n)) for n in range(200)))

    lines = _raw(path).split(b"\n")
    assert lines[-1] == b""
    decoded = [json.loads(line) for line in lines[:-1]]
    assert sorted(d["request_id"] for d in decoded) == sorted(f"req-{n}" for n in range(200))
    assert all(d["at"].endswith("Z") for d in decoded)
    # Group commit: the 200 waiters share a handful of fsyncs, not one each.
    assert 1 <= count_fsyncs() <= 5


async def test_an_append_is_on_disk_when_it_returns(log: FileAuditLog, path: Path) -> None:
    await log.append(_entry(1, reason="erase"))
    (line,) = _raw(path).splitlines()
    assert json.loads(line) == {
        "at": "2025-03-01T12:00:01Z",
        "request_id": "req-1",
        "actor": "key_admin",
        "client": "10.0.0.7",
        "action": "memory.delete",
        "target": "alice/1",
        "result": "ok",
        "status": 204,
        "details": {"reason": "erase"},
    }


async def test_file_is_created_0600_and_a_loose_mode_is_tightened(path: Path) -> None:
    audit = FileAuditLog(path)
    await audit.start()
    await audit.aclose()
    assert _mode(path) == 0o600
    os.chmod(path, 0o644)
    await audit.start()
    await audit.aclose()
    assert _mode(path) == 0o600


async def test_times_are_stored_in_utc(log: FileAuditLog, path: Path) -> None:
    paris = timezone(timedelta(hours=1))
    await log.append(_entry(1, at=datetime(2025, 3, 1, 13, 0, tzinfo=paris)))
    assert json.loads(_raw(path))["at"] == "2025-03-01T12:00:00Z"
    (back,) = await log.read()
    assert back.at == T0 and back.at.utcoffset() == timedelta(0)


async def test_read_filters_since_inclusive_until_exclusive_and_keeps_the_last(
    log: FileAuditLog,
) -> None:
    for n in (3, 0, 4, 1, 2):  # appended out of time order, read back in order
        await log.append(_entry(n))

    every = await log.read()
    assert [e.request_id for e in every] == [f"req-{n}" for n in range(5)]
    window = await log.read(since=T0 + timedelta(seconds=1), until=T0 + timedelta(seconds=3))
    assert [e.request_id for e in window] == ["req-1", "req-2"]
    assert [e.request_id for e in await log.read(limit=2)] == ["req-3", "req-4"]
    assert [e.request_id for e in await log.read(until=T0 + timedelta(seconds=3), limit=1)] == [
        "req-2"
    ]
    assert await log.read(limit=0) == []


async def test_a_partial_last_line_is_ignored(log: FileAuditLog, path: Path) -> None:
    await log.append(_entry(1))
    with path.open("ab") as f:  # another process halfway through its write
        f.write(b'{"at":"2025-03-01T12:00:09Z","request_id":"req-')
    assert [e.request_id for e in await log.read()] == ["req-1"]


async def test_read_needs_no_start_and_a_missing_file_is_empty(path: Path) -> None:
    assert await FileAuditLog(path).read() == []
    assert not _exists(path.parent)  # nor its folder
    writer = FileAuditLog(path)
    await writer.start()
    await writer.append(_entry(7, k=[1, 2]))
    await writer.aclose()
    assert await FileAuditLog(path).read() == [_entry(7, k=[1, 2])]


async def test_a_failed_write_raises_storage_unavailable_and_the_next_line_is_whole(
    log: FileAuditLog, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await log.append(_entry(1))
    real = os.write

    def half_then_disk_full(fd: int, data: bytes | memoryview) -> int:
        if len(data) > 20:
            return real(fd, bytes(data)[:20])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_disk_full)
    with pytest.raises(StorageUnavailable, match="No space left") as caught:
        await log.append(_entry(2))
    assert isinstance(caught.value.__cause__, OSError)
    monkeypatch.setattr(os, "write", real)

    await log.append(_entry(3))
    assert [e.request_id for e in await log.read()] == ["req-1", "req-3"]
    assert _raw(path).endswith(b"\n")


async def test_append_before_start_or_after_close_is_refused(path: Path) -> None:
    audit = FileAuditLog(path)
    with pytest.raises(StorageUnavailable, match="not open"):
        await audit.append(_entry(1))
    await audit.start()
    await audit.aclose()
    with pytest.raises(StorageUnavailable, match="not open"):
        await audit.append(_entry(1))


async def test_naive_times_and_non_json_details_are_refused(log: FileAuditLog) -> None:
    with pytest.raises(InvalidInput, match="timezone-aware"):
        await log.append(_entry(1, at=datetime(2025, 3, 1)))
    with pytest.raises(InvalidInput, match="not JSON"):
        await log.append(_entry(1, blob=object()))
    with pytest.raises(InvalidInput, match="timezone-aware"):
        await log.read(since=datetime(2025, 3, 1))


async def test_an_unwritable_folder_is_storage_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StorageUnavailable, match="cannot open the audit log"):
        await FileAuditLog(blocker / "audit.log").start()


def test_there_is_no_way_to_change_or_remove_an_entry() -> None:
    public = {
        name
        for name, member in inspect.getmembers(FileAuditLog)
        if not name.startswith("_") and callable(member)
    }
    assert public == {"start", "aclose", "append", "read"}
