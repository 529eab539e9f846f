"""PgAuditLog: the append-only audit log as a PostgreSQL table, shared by every instance.

``<schema>.audit_log`` has one row per entry (``details`` as jsonb) and an index
on ``at``. :meth:`PgAuditLog.start` applies the migrations of the component
``audit`` (see :mod:`membank_server.pg`): the table, and a trigger function that
raises on ``UPDATE`` and ``DELETE`` (per row) and on ``TRUNCATE`` (per
statement): no statement can change or remove an entry while the triggers are
there. The table's owner or a superuser can still drop them; to make the log
tamper-evident against the server's own credentials, create the table with
another role (start membank once as that role) and grant the server only
``INSERT, SELECT`` on it and ``USAGE`` on its sequence. A log made before
migrations were recorded is adopted as it stands; a role that may not write
``schema_migrations`` then starts without recording anything.

An append is one ``INSERT``, committed with ``synchronous_commit = on`` before
it returns. Driver errors become domain errors in :mod:`membank_server.pg`
(``StorageUnavailable``; a refused login at start a ``ConfigError``); messages
never show the password.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from membank_server.domain.errors import InvalidInput, StorageUnavailable
from membank_server.domain.security import AuditEntry
from membank_server.pg import (
    Database,
    Migration,
    PoolSettings,
    apply_migrations,
    check_ident,
    qualify,
)

__all__ = ["PgAuditLog"]

_COLUMNS = "at, request_id, actor, client, action, target, result, status, details"
#: Two connections; statements limited by the client only, as before the settings were shared.
_POOL = PoolSettings(max_size=2, statement_timeout_ms=None)
_TRIGGERS = (
    ("audit_log_no_change", "BEFORE UPDATE OR DELETE ON {t} FOR EACH ROW"),
    ("audit_log_no_truncate", "BEFORE TRUNCATE ON {t} FOR EACH STATEMENT"),
)


def _migrations(schema: str) -> list[Migration]:
    """Version 1 is what the first membank with this sink made (each piece when missing):
    a log made by it, by the server's role or another, is adopted as it stands."""
    t, index = qualify(schema, "audit_log"), qualify(schema, "audit_log_at_idx")
    function = f"{qualify(schema, 'audit_log_append_only')}()"
    triggers = ", ".join(f"'{name}'" for name, _ in _TRIGGERS)
    # Names checked by check_ident: nothing in them needs escaping in a literal.
    adopt = (
        f"SELECT to_regclass('{t}') IS NOT NULL AND to_regclass('{index}') IS NOT NULL"
        f" AND to_regprocedure('{function}') IS NOT NULL AND (SELECT count(*) FROM pg_trigger"
        f" WHERE tgrelid = to_regclass('{t}') AND tgname IN ({triggers})) = {len(_TRIGGERS)}"
    )
    return [
        Migration(
            1,
            (
                f"CREATE TABLE {t} (id bigserial PRIMARY KEY,"
                " at timestamptz NOT NULL, request_id text NOT NULL, actor text NOT NULL,"
                " client text NOT NULL, action text NOT NULL, target text NOT NULL,"
                " result text NOT NULL, status int NOT NULL,"
                " details jsonb NOT NULL DEFAULT '{}'::jsonb)",
                f"CREATE INDEX audit_log_at_idx ON {t} (at)",
                f"CREATE FUNCTION {function} RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                " RAISE EXCEPTION 'the membank audit log is append-only: % on %.% refused',"
                " TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME; END $$",
                *(
                    f"CREATE TRIGGER {name} {when.format(t=t)} EXECUTE FUNCTION {function}"
                    for name, when in _TRIGGERS
                ),
            ),
            adopt=adopt,
        )
    ]


def _aware(value: datetime | None, what: str) -> None:
    if value is not None and value.tzinfo is None:
        raise InvalidInput(f"the audit log needs a timezone-aware {what}")


class PgAuditLog:
    """The :class:`~membank_server.domain.ports.AuditLog` port on a PostgreSQL table.

    :meth:`read` works without :meth:`start` (the CLI reads that way, never
    creating anything); :meth:`append` needs it.

    Args:
        dsn: ``postgresql://user:password@host:port/db``.
        schema: The schema of ``audit_log`` (created when missing).
        pool: Pool sizes and timeouts (by default two connections).
    """

    def __init__(self, dsn: str, *, schema: str = "membank", pool: PoolSettings = _POOL) -> None:
        self.dsn = dsn
        self.schema = check_ident(schema, "setting security.audit.schema")
        self.table = qualify(schema, "audit_log")
        self.db = Database(
            dsn,
            pool,
            label="the audit log",
            application_name="membank-audit",
            missing_table="start the server once with security.audit.sink=postgres",
        )
        self._started = False

    @property
    def where(self) -> str:
        return self.db.where

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        """Apply the audit log's migrations (adopting a log made before they were
        recorded), then open the pool.

        Raises:
            ConfigError: the login or database is refused, or this user may not
                create the schema or table.
            StorageUnavailable: PostgreSQL cannot be reached.
        """
        async with self.db.session("create the audit table") as conn:
            await apply_migrations(conn, self.schema, "audit", lambda _: _migrations(self.schema))
        await self.db.open()
        self._started = True

    async def aclose(self) -> None:
        self._started = False
        await self.db.close()

    # -- writes and reads --------------------------------------------------

    async def append(self, entry: AuditEntry) -> None:
        """Insert one entry; committed when this returns.

        Raises:
            InvalidInput: the entry's time is naive or its details are not JSON.
            StorageUnavailable: the log is not started or PostgreSQL cannot commit.
        """
        _aware(entry.at, "entry time")
        try:
            details = msgspec.json.encode(dict(entry.details)).decode()
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"an audit entry's details are not JSON: {exc}") from exc
        if not self._started:
            raise StorageUnavailable(f"the audit log on {self.where} is not started")
        sql = (
            f"INSERT INTO {self.table} ({_COLUMNS})"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb)"
        )
        values = (
            entry.at, entry.request_id, entry.actor, entry.client, entry.action,
            entry.target, entry.result, entry.status, details,
        )  # fmt: skip
        await self.db.run(
            "append to the audit log", lambda c: c.execute(sql, *values), transaction=False
        )

    async def read(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> list[AuditEntry]:
        """Entries with ``since <= at < until`` in time order; with ``limit``, the last ones.

        Raises:
            InvalidInput: ``since`` or ``until`` is naive.
            StorageUnavailable: PostgreSQL cannot answer, or the table is missing.
        """
        _aware(since, "since")
        _aware(until, "until")
        if limit is not None and limit <= 0:
            return []
        await self.db.open()  # a reader needs no start(), and creates nothing
        # The newest first to apply the limit, then back to time order.
        sql = (
            f"SELECT {_COLUMNS} FROM (SELECT id, {_COLUMNS} FROM {self.table}"
            " WHERE ($1::timestamptz IS NULL OR at >= $1)"
            " AND ($2::timestamptz IS NULL OR at < $2)"
            " ORDER BY at DESC, id DESC LIMIT $3) AS newest ORDER BY at, id"
        )
        rows = await self.db.run(
            "read the audit log", lambda c: c.fetch(sql, since, until, limit), transaction=False
        )
        return [
            AuditEntry(
                at=r["at"].astimezone(UTC),
                request_id=r["request_id"],
                actor=r["actor"],
                client=r["client"],
                action=r["action"],
                target=r["target"],
                result=r["result"],
                status=r["status"],
                details=msgspec.json.decode(r["details"]),
            )
            for r in rows
        ]
