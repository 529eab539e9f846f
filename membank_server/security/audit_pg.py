"""PgAuditLog: the append-only audit log as a PostgreSQL table, shared by every instance.

``<schema>.audit_log`` has one row per entry (``details`` as jsonb) and an index
on ``at``. :meth:`PgAuditLog.start` creates what is missing, under the advisory
lock every membank schema change takes, including a trigger function that
raises on ``UPDATE`` and ``DELETE`` (per row) and on ``TRUNCATE`` (per
statement): no statement can change or remove an entry while the triggers are
there. The table's owner or a superuser can still drop them; to make the log
tamper-evident against the server's own credentials, create the table with
another role and grant the server only ``INSERT, SELECT`` on it and ``USAGE`` on
its sequence.

An append is one ``INSERT``, committed with ``synchronous_commit = on`` before
it returns. Driver errors become ``StorageUnavailable`` (a refused login at
start a ``ConfigError``); messages never show the password.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import asyncpg  # type: ignore[import-untyped]
import msgspec

from membank_server.domain.errors import ConfigError, InvalidInput, StorageUnavailable
from membank_server.domain.security import AuditEntry

__all__ = ["PgAuditLog"]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,39}$(?!\n)")
_DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)
_REFUSED = (
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InvalidCatalogNameError,
    asyncpg.InsufficientPrivilegeError,
)
#: The lock every membank schema change takes ("membank" in ASCII), as the stores do.
_LOCK_KEY = 0x6D656D62616E6B
_COLUMNS = "at, request_id, actor, client, action, target, result, status, details"


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
        connect_timeout: Seconds to connect or to wait for a pooled connection.
        command_timeout: Client-side seconds per statement.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "membank",
        connect_timeout: float = 10.0,
        command_timeout: float = 30.0,
    ) -> None:
        if not _IDENT.match(schema):
            raise ConfigError(
                "setting security.audit.schema must be a letter or _ then up to 39 letters, "
                f"digits or _; got {schema!r}"
            )
        self.dsn, self.schema = dsn, schema
        self.table = f'"{schema}".audit_log'
        self._connect_timeout, self._command_timeout = connect_timeout, command_timeout
        self._pool: Any = None
        self._started = False
        self._opening: asyncio.Lock | None = None

    @property
    def where(self) -> str:
        parts = urlsplit(self.dsn)
        db = unquote(parts.path.lstrip("/")) or "?"
        return f"PostgreSQL at {parts.hostname or 'localhost'}:{parts.port or 5432}/{db}"

    def _translate(self, exc: BaseException, what: str, *, starting: bool = False) -> Exception:
        text = str(exc) or type(exc).__name__
        secret = urlsplit(self.dsn).password
        if secret:
            text = text.replace(unquote(secret), "***")
        if starting and isinstance(exc, _REFUSED):
            return ConfigError(f"{self.where} refused to {what}: {text}")
        if isinstance(exc, asyncpg.UndefinedTableError):
            text += " (start the server once with security.audit.sink=postgres)"
        return StorageUnavailable(f"{self.where} cannot {what}: {text}")

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        """Create the schema, table, index and append-only triggers if missing; open the pool.

        Raises:
            ConfigError: the login or database is refused, or this user may not
                create the schema or table.
            StorageUnavailable: PostgreSQL cannot be reached.
        """
        try:
            conn = await asyncpg.connect(
                self.dsn, timeout=self._connect_timeout, command_timeout=self._command_timeout
            )
        except _DRIVER_ERRORS as exc:
            raise self._translate(exc, "connect", starting=True) from exc
        try:
            async with conn.transaction():
                await self._migrate(conn)
            await conn.close()
        except _DRIVER_ERRORS as exc:
            conn.terminate()
            raise self._translate(exc, "create the audit table", starting=True) from exc
        except BaseException:
            conn.terminate()
            raise
        await self._open_pool()
        self._started = True

    async def _migrate(self, conn: Any) -> None:
        """Create what is missing, and only that: a role granted just INSERT and SELECT
        on a table made by another role starts without needing any more privilege."""
        s, t = f'"{self.schema}"', self.table
        function = f"{s}.audit_log_append_only()"
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        # Checked first: CREATE SCHEMA IF NOT EXISTS needs CREATE on the database
        # even when the schema is there.
        if not await conn.fetchval("SELECT to_regnamespace($1) IS NOT NULL", self.schema):
            await conn.execute(f"CREATE SCHEMA {s}")
        if not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", t):
            await conn.execute(
                f"CREATE TABLE {t} (id bigserial PRIMARY KEY,"
                " at timestamptz NOT NULL, request_id text NOT NULL, actor text NOT NULL,"
                " client text NOT NULL, action text NOT NULL, target text NOT NULL,"
                " result text NOT NULL, status int NOT NULL,"
                " details jsonb NOT NULL DEFAULT '{}'::jsonb)"
            )
        if not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{s}.audit_log_at_idx"):
            await conn.execute(f"CREATE INDEX audit_log_at_idx ON {t} (at)")
        if not await conn.fetchval("SELECT to_regprocedure($1) IS NOT NULL", function):
            await conn.execute(
                f"CREATE FUNCTION {function} RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                " RAISE EXCEPTION 'the membank audit log is append-only: % on %.% refused',"
                " TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME; END $$"
            )
        present = {
            r["tgname"]
            for r in await conn.fetch(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = to_regclass($1)", t
            )
        }
        for name, when in (
            ("audit_log_no_change", "BEFORE UPDATE OR DELETE ON {t} FOR EACH ROW"),
            ("audit_log_no_truncate", "BEFORE TRUNCATE ON {t} FOR EACH STATEMENT"),
        ):
            if name not in present:
                await conn.execute(
                    f"CREATE TRIGGER {name} {when.format(t=t)} EXECUTE FUNCTION {function}"
                )

    async def _open_pool(self) -> Any:
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._pool is None:
                try:
                    self._pool = await asyncpg.create_pool(
                        self.dsn,
                        min_size=1,
                        max_size=2,
                        timeout=self._connect_timeout,
                        command_timeout=self._command_timeout,
                        # An append that returned is committed durably, whatever the default.
                        server_settings={
                            "application_name": "membank-audit",
                            "synchronous_commit": "on",
                        },
                    )
                except _DRIVER_ERRORS as exc:
                    raise self._translate(exc, "open a connection pool", starting=True) from exc
            return self._pool

    async def aclose(self) -> None:
        pool, self._pool, self._started = self._pool, None, False
        if pool is None:
            return
        try:
            await pool.close()
        except _DRIVER_ERRORS as exc:
            raise self._translate(exc, "close the pool") from exc

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
        if not self._started or self._pool is None:
            raise StorageUnavailable(f"the audit log on {self.where} is not started")
        try:
            async with self._pool.acquire(timeout=self._connect_timeout) as conn:
                await conn.execute(
                    f"INSERT INTO {self.table} ({_COLUMNS})"
                    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb)",
                    entry.at, entry.request_id, entry.actor, entry.client, entry.action,
                    entry.target, entry.result, entry.status, details,
                )  # fmt: skip
        except _DRIVER_ERRORS as exc:
            raise self._translate(exc, "append to the audit log") from exc

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
        pool = await self._open_pool()
        # The newest first to apply the limit, then back to time order.
        sql = (
            f"SELECT {_COLUMNS} FROM (SELECT id, {_COLUMNS} FROM {self.table}"
            " WHERE ($1::timestamptz IS NULL OR at >= $1)"
            " AND ($2::timestamptz IS NULL OR at < $2)"
            " ORDER BY at DESC, id DESC LIMIT $3) AS newest ORDER BY at, id"
        )
        try:
            async with pool.acquire(timeout=self._connect_timeout) as conn:
                rows = await conn.fetch(sql, since, until, limit)
        except _DRIVER_ERRORS as exc:
            raise self._translate(exc, "read the audit log") from exc
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
