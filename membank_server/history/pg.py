"""PgHistoryStore: the server's history in PostgreSQL, shared by every instance.

Four tables in the configured schema (``observe_samples``, ``observe_windows``,
``observe_tuning``, ``observe_meta``), made by the migrations of the component
``observe`` (see :mod:`membank_server.pg`). A sample of a moment already kept (by
another worker or instance) is dropped: ``ON CONFLICT DO NOTHING``.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from membank_server.domain.capacity import ADDED_COLUMNS, SAMPLE_FIELDS, Sample
from membank_server.domain.observe import RequestWindow, TuningEvent
from membank_server.history._rows import (
    TUNING_FIELDS,
    WINDOW_FIELDS,
    event_of,
    event_row,
    sample_of,
    sample_row,
    window_of,
    window_row,
)
from membank_server.pg import Database, Migration, PoolSettings, apply_migrations, qualify

__all__ = ["PgHistoryStore"]

_POOL = PoolSettings(max_size=2)


def _migrations(schema: str) -> list[Migration]:
    s, w = qualify(schema, "observe_samples"), qualify(schema, "observe_windows")
    t, m = qualify(schema, "observe_tuning"), qualify(schema, "observe_meta")
    return [
        Migration(
            1,
            (
                f"CREATE TABLE {s} (at timestamptz PRIMARY KEY, memories bigint NOT NULL,"
                " users bigint NOT NULL, disk_bytes bigint NOT NULL, rss_bytes bigint NOT NULL,"
                " rps double precision NOT NULL, p95_ms double precision,"
                " p99_ms double precision, cpu_percent double precision NOT NULL,"
                " errors_per_s double precision NOT NULL, backend text NOT NULL,"
                " dimension int NOT NULL)",
                f"CREATE TABLE {w} (at timestamptz PRIMARY KEY, seconds double precision NOT NULL,"
                " requests bigint NOT NULL, server_errors bigint NOT NULL,"
                " client_errors bigint NOT NULL, latency text NOT NULL,"
                " cpu double precision NOT NULL)",
                f"CREATE TABLE {t} (id bigserial PRIMARY KEY, at timestamptz NOT NULL,"
                " session text NOT NULL, action text NOT NULL, tunable text NOT NULL,"
                " old double precision, new double precision, objective text NOT NULL,"
                " before double precision, after double precision, note text NOT NULL)",
                f"CREATE TABLE {m} (name text PRIMARY KEY, value bytea NOT NULL)",
            ),
        ),
        Migration(
            2,
            tuple(
                f"ALTER TABLE {s} ADD COLUMN {column} {kind.replace('INTEGER', 'bigint')}"
                for column, kind in ADDED_COLUMNS.items()
            ),
        ),
    ]


def _marks(n: int) -> str:
    return ", ".join(f"${i}" for i in range(1, n + 1))


class PgHistoryStore:
    """The :class:`~membank_server.domain.observe.HistoryStore` port on PostgreSQL."""

    def __init__(self, dsn: str, *, schema: str = "membank", pool: PoolSettings = _POOL) -> None:
        self.schema = schema
        self.db = Database(dsn, pool, label="the history", application_name="membank-history")
        self.where = self.db.where
        self._s, self._w = qualify(schema, "observe_samples"), qualify(schema, "observe_windows")
        self._t, self._m = qualify(schema, "observe_tuning"), qualify(schema, "observe_meta")

    async def start(self) -> None:
        async with self.db.session("create the history tables") as conn:
            await apply_migrations(conn, self.schema, "observe", lambda _: _migrations(self.schema))
        await self.db.open()

    async def aclose(self) -> None:
        await self.db.close()

    async def add(self, sample: Sample, window: RequestWindow) -> bool:
        put_sample = (
            f"INSERT INTO {self._s} ({', '.join(SAMPLE_FIELDS)}) VALUES"
            f" ({_marks(len(SAMPLE_FIELDS))}) ON CONFLICT (at) DO NOTHING"
        )
        put_window = (
            f"INSERT INTO {self._w} ({', '.join(WINDOW_FIELDS)}) VALUES"
            f" ({_marks(len(WINDOW_FIELDS))}) ON CONFLICT (at) DO NOTHING"
        )

        async def add(conn: Any) -> bool:
            status = await conn.execute(put_sample, *sample_row(sample, epoch=False))
            if status.endswith(" 0"):
                return False
            await conn.execute(put_window, *window_row(window, epoch=False))
            return True

        return await self.db.run("add a sample", add)

    async def samples(self, since: datetime | None) -> list[Sample]:
        sql = (
            f"SELECT {', '.join(SAMPLE_FIELDS)} FROM {self._s}"
            " WHERE $1::timestamptz IS NULL OR at >= $1 ORDER BY at"
        )
        rows = await self.db.run(
            "read samples", lambda c: c.fetch(sql, since), transaction=False, attempts=3
        )
        return [sample_of(tuple(r)) for r in rows]

    async def windows(self, since: datetime) -> list[RequestWindow]:
        sql = f"SELECT {', '.join(WINDOW_FIELDS)} FROM {self._w} WHERE at > $1 ORDER BY at"
        rows = await self.db.run(
            "read windows", lambda c: c.fetch(sql, since), transaction=False, attempts=3
        )
        return [window_of(tuple(r)) for r in rows]

    async def prune(self, before: datetime) -> int:
        async def prune(conn: Any) -> int:
            status = await conn.execute(f"DELETE FROM {self._s} WHERE at < $1", before)
            await conn.execute(f"DELETE FROM {self._w} WHERE at < $1", before)
            return int(status.rsplit(" ", 1)[-1])

        return await self.db.run("forget old samples", prune)

    async def add_tuning(self, event: TuningEvent) -> None:
        sql = (
            f"INSERT INTO {self._t} ({', '.join(TUNING_FIELDS)})"
            f" VALUES ({_marks(len(TUNING_FIELDS))})"
        )
        row = event_row(event, epoch=False)
        await self.db.run("record a tuning event", lambda c: c.execute(sql, *row))

    async def tuning(self, limit: int) -> list[TuningEvent]:
        sql = (
            f"SELECT {', '.join(TUNING_FIELDS)} FROM (SELECT * FROM {self._t}"
            " ORDER BY id DESC LIMIT $1) AS last ORDER BY id"
        )
        rows = await self.db.run(
            "read tuning events", lambda c: c.fetch(sql, limit), transaction=False, attempts=3
        )
        return [event_of(tuple(r)) for r in rows]

    async def secret(self, name: str) -> bytes:
        async def get(conn: Any) -> bytes:
            await conn.execute(
                f"INSERT INTO {self._m} (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                name,
                secrets.token_bytes(32),
            )
            return bytes(await conn.fetchval(f"SELECT value FROM {self._m} WHERE name = $1", name))

        return await self.db.run("read a secret", get)
