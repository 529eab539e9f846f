"""Connections: the pool settings given once, and one database as one component reaches it.

:class:`PoolSettings` is built once (by ``bootstrap``, from ``storage.postgres``)
and passed to every user. :class:`Database` opens and closes that user's pool,
runs work on a pooled connection (in a transaction or not, reads retried on a
fresh connection when the link broke) and opens unpooled sessions for schema
work; whatever the driver raises leaves it translated
(:func:`~membank_server.pg._errors.translate`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped]
import stamina

from membank_server.domain.errors import ConfigError, MembankError, StorageUnavailable
from membank_server.pg._dsn import where
from membank_server.pg._errors import DRIVER_ERRORS, transient, translate
from membank_server.pg._idents import quote_ident

__all__ = ["Database", "InTransaction", "PoolSettings"]

_T = TypeVar("_T")
#: Work run on a connection inside a transaction someone else opened and commits.
InTransaction = Callable[[Any], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class PoolSettings:
    """How a pool connects and how long anything may take.

    Args:
        min_size: Connections kept open.
        max_size: Most connections open at once.
        connect_timeout: Seconds to open a connection or wait for a pooled one.
        command_timeout: Client-side seconds per statement (None: no limit).
        statement_timeout_ms: Server-side limit per statement (None: the server's).
    """

    min_size: int = 1
    max_size: int = 10
    connect_timeout: float = 10.0
    command_timeout: float | None = 30.0
    statement_timeout_ms: int | None = 10_000

    def __post_init__(self) -> None:
        if not 1 <= self.min_size <= self.max_size:
            raise ConfigError(
                "a PostgreSQL pool needs 1 <= pool_min <= pool_max,"
                f" not {self.min_size} and {self.max_size}"
            )


class Database:
    """One database, one pool, and how its errors are told.

    Args:
        dsn: ``postgresql://user:password@host:port/db``; never in a message or repr.
        pool: The pool's sizes and timeouts.
        label: Who uses it, for "is not open" ("the outbox").
        application_name: What ``pg_stat_activity`` shows for these connections.
        missing_table: What an operator should do when a table is missing.
    """

    def __init__(
        self,
        dsn: str,
        pool: PoolSettings,
        *,
        label: str,
        application_name: str = "membank",
        missing_table: str = "",
    ) -> None:
        self.dsn, self.settings, self.label = dsn, pool, label
        self.where = where(dsn)
        self._application_name = application_name
        self._missing_table = missing_table
        self._pool: Any = None
        self._opening: asyncio.Lock | None = None

    def __repr__(self) -> str:
        return f"<Database {self.label} on {self.where}>"

    def _translate(
        self, exc: BaseException, what: str, *, starting: bool = False, conflict: str | None = None
    ) -> MembankError:
        """The domain error for a driver error, in this database's words."""
        return translate(
            exc, what, dsn=self.dsn, starting=starting,
            missing_table=self._missing_table, conflict=conflict,
        )  # fmt: skip

    def _server_settings(self, search_path: str | None = None) -> dict[str, str]:
        settings = {
            "application_name": self._application_name,
            # A 2xx promises a durable write, whatever the database's default.
            "synchronous_commit": "on",
        }
        if self.settings.statement_timeout_ms is not None:
            settings["statement_timeout"] = str(self.settings.statement_timeout_ms)
        if search_path is not None:
            settings["search_path"] = quote_ident(search_path)
        return settings

    # -- lifecycle ---------------------------------------------------------

    @contextlib.asynccontextmanager
    async def session(self, what: str) -> AsyncIterator[Any]:
        """A connection outside the pool, for schema work at start; errors translated."""
        try:
            conn = await asyncpg.connect(
                self.dsn,
                timeout=self.settings.connect_timeout,
                command_timeout=self.settings.command_timeout,
                server_settings=self._server_settings(),
            )
        except DRIVER_ERRORS as exc:
            raise self._translate(exc, what, starting=True) from exc
        try:
            yield conn
            await conn.close()
        except DRIVER_ERRORS as exc:
            conn.terminate()
            raise self._translate(exc, what, starting=True) from exc
        except BaseException:
            conn.terminate()
            raise

    async def open(
        self,
        *,
        search_path: str | None = None,
        init: Callable[[Any], Awaitable[None]] | None = None,
        extra_settings: dict[str, str] | None = None,
    ) -> None:
        """Open the pool unless it is open; callers racing to open it get one pool.

        ``init`` runs on every new connection; ``extra_settings`` become connection
        defaults (startup parameters, so they survive the pool's ``RESET ALL``).
        """
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._pool is not None:
                return
            try:
                self._pool = await asyncpg.create_pool(
                    self.dsn,
                    min_size=self.settings.min_size,
                    max_size=self.settings.max_size,
                    timeout=self.settings.connect_timeout,
                    command_timeout=self.settings.command_timeout,
                    server_settings={
                        **self._server_settings(search_path),
                        **(extra_settings or {}),
                    },
                    init=init,
                )
            except DRIVER_ERRORS as exc:
                raise self._translate(exc, "open a connection pool", starting=True) from exc

    async def close(self) -> None:
        """Close the pool (waiting for connections in use); nothing when it is closed."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await pool.close()
        except DRIVER_ERRORS as exc:
            raise self._translate(exc, "close the pool") from exc

    def pool_usage(self) -> tuple[int, int, int] | None:
        """Connections in use, idle, and the most allowed; None while the pool is closed."""
        pool = self._pool
        if pool is None:
            return None
        size, idle = pool.get_size(), pool.get_idle_size()
        return size - idle, idle, pool.get_max_size()

    # -- work --------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def snapshot(self, what: str) -> AsyncIterator[Any]:
        """A pooled connection in one ``REPEATABLE READ READ ONLY`` transaction for the
        block: every statement on it sees the database as of the first (a backup).

        Raises:
            StorageUnavailable: the pool is not open, or PostgreSQL cannot answer.
        """
        pool = self._pool
        if pool is None:
            raise StorageUnavailable(f"{self.label} ({self.where}) is not open")
        try:
            async with (
                pool.acquire(timeout=self.settings.connect_timeout) as conn,
                conn.transaction(isolation="repeatable_read", readonly=True),
            ):
                yield conn
        except DRIVER_ERRORS as exc:
            raise self._translate(exc, what) from exc

    async def run(
        self,
        what: str,
        op: Callable[[Any], Awaitable[_T]],
        *,
        transaction: bool = True,
        attempts: int = 1,
        conflict: str | None = None,
    ) -> _T:
        """Run ``op`` on a pooled connection, in one transaction unless told otherwise.

        Args:
            what: What ``op`` does, for the error ("count memories").
            op: The work; a :class:`MembankError` it raises passes unchanged.
            transaction: Wrap ``op`` in a transaction (a write's commit or rollback).
            attempts: Tries in all when the link breaks: more than one only for work
                that may run twice (a read; a write's commit may have happened).
            conflict: The ``Conflict`` message a unique violation means here.

        Raises:
            StorageUnavailable: the pool is not open, or PostgreSQL cannot answer.
        """
        pool = self._pool
        if pool is None:
            raise StorageUnavailable(f"{self.label} ({self.where}) is not open")
        try:
            async for attempt in stamina.retry_context(
                on=transient, attempts=attempts, wait_initial=0.05, wait_max=1.0
            ):
                with attempt:
                    async with pool.acquire(timeout=self.settings.connect_timeout) as conn:
                        if not transaction:
                            return await op(conn)
                        async with conn.transaction():
                            return await op(conn)
        except DRIVER_ERRORS as exc:
            raise self._translate(exc, what, conflict=conflict) from exc
        raise AssertionError("unreachable: stamina makes at least one attempt")
