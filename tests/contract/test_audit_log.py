"""One audit-log suite over every sink: a JSON-lines file and the real PostgreSQL.

The PostgreSQL sink gets a schema of its own per test (``pg_schema``), dropped
afterwards; its table must refuse UPDATE, DELETE and TRUNCATE from any client.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest

from membank_server.domain.errors import ConfigError, StorageUnavailable
from membank_server.domain.ports import AuditLog
from membank_server.domain.security import AuditEntry
from membank_server.pg import PoolSettings
from membank_server.security.audit_file import FileAuditLog
from membank_server.security.audit_pg import PgAuditLog

__all__: list[str] = []

T0 = datetime(2025, 6, 1, 8, 30, 15, 123456, tzinfo=UTC)


def _entry(n: int, *, seconds: float | None = None, **details: object) -> AuditEntry:
    return AuditEntry(
        at=T0 + timedelta(seconds=n if seconds is None else seconds),
        request_id=f"req-{n}",
        actor="anonymous" if n % 2 else "key_7f3a",
        client="203.0.113.9",
        action="auth.failed" if n % 2 else "memories.erase",
        target="user:alice",
        result="denied" if n % 2 else "ok",
        status=401 if n % 2 else 200,
        details=details,
    )


@pytest.fixture(params=["file", "postgres"])
def open_audit(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], AuditLog]:
    """A sink on a fresh file or a fresh schema (sync: it may ask for async fixtures)."""
    if request.param == "file":
        return lambda: FileAuditLog(tmp_path / "audit.log")
    pg_dsn, pg_schema = request.getfixturevalue("pg_dsn"), request.getfixturevalue("pg_schema")
    return lambda: PgAuditLog(pg_dsn, schema=pg_schema)


@pytest.fixture
async def audit(open_audit: Callable[[], AuditLog]) -> AsyncIterator[AuditLog]:
    log = open_audit()
    await log.start()
    yield log
    await log.aclose()


async def test_round_trip_keeps_every_field(audit: AuditLog) -> None:
    entry = _entry(
        0, reason="gdpr", deleted=12, ids=["a", "b"], nested={"ok": True, "n": None, "f": 0.5}
    )
    await audit.append(entry)
    assert await audit.read() == [entry]


async def test_entries_come_back_in_time_order(audit: AuditLog) -> None:
    for n in (2, 0, 3, 1):
        await audit.append(_entry(n))
    assert [e.request_id for e in await audit.read()] == ["req-0", "req-1", "req-2", "req-3"]


async def test_equal_times_keep_append_order(audit: AuditLog) -> None:
    for n in range(4):
        await audit.append(_entry(n, seconds=0))
    assert [e.request_id for e in await audit.read()] == ["req-0", "req-1", "req-2", "req-3"]


async def test_limit_returns_the_last_n(audit: AuditLog) -> None:
    await asyncio.gather(*(audit.append(_entry(n)) for n in range(10)))
    assert [e.request_id for e in await audit.read(limit=3)] == ["req-7", "req-8", "req-9"]
    assert len(await audit.read(limit=50)) == 10
    assert await audit.read(limit=0) == []


async def test_since_is_inclusive_and_until_exclusive(audit: AuditLog) -> None:
    for n in range(6):
        await audit.append(_entry(n))
    got = await audit.read(since=T0 + timedelta(seconds=2), until=T0 + timedelta(seconds=4))
    assert [e.request_id for e in got] == ["req-2", "req-3"]
    last = await audit.read(since=T0 + timedelta(seconds=1), limit=2)
    assert [e.request_id for e in last] == ["req-4", "req-5"]
    assert await audit.read(since=T0 + timedelta(days=1)) == []


async def test_an_empty_log_reads_empty(audit: AuditLog) -> None:
    assert await audit.read() == []
    assert await audit.read(limit=5) == []


async def test_entries_survive_a_restart(audit: AuditLog) -> None:
    await audit.append(_entry(1, k="v"))
    await audit.aclose()
    await audit.start()
    await audit.append(_entry(2))
    assert [e.request_id for e in await audit.read()] == ["req-1", "req-2"]


# -- PostgreSQL: append-only in the database itself ---------------------------


@pytest.fixture
async def pg_log(pg_dsn: str, pg_schema: str) -> AsyncIterator[PgAuditLog]:
    log = PgAuditLog(pg_dsn, schema=pg_schema)
    await log.start()
    yield log
    await log.aclose()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE {t} SET actor = 'someone-else'",
        "UPDATE {t} SET details = '{{}}'::jsonb WHERE request_id = 'req-1'",
        "DELETE FROM {t}",
        "DELETE FROM {t} WHERE request_id = 'req-0'",
        "TRUNCATE {t}",
    ],
    ids=["update-all", "update-one", "delete-all", "delete-one", "truncate"],
)
async def test_the_table_refuses_changes_from_any_client(
    pg_log: PgAuditLog, pg_dsn: str, pg_schema: str, statement: str
) -> None:
    for n in range(2):
        await pg_log.append(_entry(n, seq=n))
    before = await pg_log.read()
    conn = await asyncpg.connect(pg_dsn)
    try:
        with pytest.raises(asyncpg.PostgresError, match="append-only"):
            await conn.execute(statement.format(t=f'"{pg_schema}".audit_log'))
    finally:
        await conn.close()
    assert await pg_log.read() == before
    assert len(before) == 2


async def test_start_twice_and_two_instances_share_the_table(
    pg_log: PgAuditLog, pg_dsn: str, pg_schema: str
) -> None:
    other = PgAuditLog(pg_dsn, schema=pg_schema)
    await asyncio.gather(other.start(), pg_log.start())
    try:
        await pg_log.append(_entry(1))
        await other.append(_entry(2))
        assert [e.request_id for e in await other.read()] == ["req-1", "req-2"]
    finally:
        await other.aclose()


async def test_a_reader_needs_no_start_and_creates_nothing(pg_dsn: str, pg_schema: str) -> None:
    reader = PgAuditLog(pg_dsn, schema=pg_schema)
    try:
        with pytest.raises(StorageUnavailable, match="start the server once"):
            await reader.read()
        with pytest.raises(StorageUnavailable, match="not started"):
            await reader.append(_entry(1))
    finally:
        await reader.aclose()


async def test_an_unreachable_database_is_storage_unavailable() -> None:
    dsn = "postgresql://membank:s3cret@127.0.0.1:1/membank"
    log = PgAuditLog(dsn, pool=PoolSettings(max_size=2, connect_timeout=2))
    with pytest.raises(StorageUnavailable) as caught:
        await log.start()
    assert "s3cret" not in str(caught.value)
    with pytest.raises(StorageUnavailable):
        await log.read()


def test_a_schema_name_that_needs_quoting_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"security\.audit\.schema"):
        PgAuditLog("postgresql://x@127.0.0.1/db", schema='a"; DROP TABLE x; --')
