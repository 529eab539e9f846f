"""Driver errors as membank's domain errors: the one table every PostgreSQL user shares.

    driver error                               domain error
    asyncpg.UniqueViolationError, when the     Conflict(<the caller's words>)
      caller names the conflict
    asyncpg.DataError (a value refused)        InvalidInput
    login refused, no such database, or        ConfigError
      privilege missing, while starting
    anything else the driver or its socket     StorageUnavailable
      raises (a cancelled statement, a
      timeout, a missing table included)

Messages name the host and database (:func:`~membank_server.pg._dsn.where`),
never the password (:func:`~membank_server.pg._dsn.redact`).
"""

from __future__ import annotations

import asyncpg  # type: ignore[import-untyped]

from membank_server.domain.errors import (
    ConfigError,
    Conflict,
    InvalidInput,
    MembankError,
    StorageUnavailable,
)
from membank_server.pg._dsn import redact, where

__all__ = ["DRIVER_ERRORS", "transient", "translate"]

#: Every exception the driver or the socket under it raises (TimeoutError is an OSError).
DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
)
_TRANSIENT = (
    asyncpg.PostgresConnectionError,  # includes ConnectionDoesNotExistError
    # A backend killed while the client was about to use it can surface as a protocol
    # state error instead of a lost connection; a fresh connection is the cure.
    asyncpg.InternalClientError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.TooManyConnectionsError,
)
_REFUSED = (
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InvalidCatalogNameError,
    asyncpg.InsufficientPrivilegeError,
)


def transient(exc: Exception) -> bool:
    """Whether a read may succeed on a fresh connection: the link broke, not the query."""
    if isinstance(exc, TimeoutError):
        return False  # an overloaded server is not helped by the same query again
    return isinstance(exc, (*_TRANSIENT, OSError))


def translate(
    exc: BaseException,
    what: str,
    *,
    dsn: str,
    starting: bool = False,
    missing_table: str = "",
    conflict: str | None = None,
) -> MembankError:
    """The domain error for a driver error (``raise translate(...) from exc``).

    Args:
        exc: What the driver raised.
        what: What was being done, to follow "cannot" ("read the audit log").
        dsn: The database's DSN: its place is named, its password cut out.
        starting: At start a refused login or missing database is a ConfigError.
        missing_table: What to do about a missing table, appended in parentheses.
        conflict: The message of the ``Conflict`` a unique violation means here;
            None: it means nothing special (``StorageUnavailable``).
    """
    at = where(dsn)
    text = redact(str(exc) or type(exc).__name__, dsn)
    if conflict is not None and isinstance(exc, asyncpg.UniqueViolationError):
        return Conflict(conflict)
    if isinstance(exc, asyncpg.DataError):
        return InvalidInput(f"{at} refused a value while it would {what}: {text}")
    if starting and isinstance(exc, _REFUSED):
        return ConfigError(f"{at} refused to {what}: {text}")
    if isinstance(exc, asyncpg.QueryCanceledError):
        text = f"the statement was cancelled (statement_timeout?): {text}"
    elif isinstance(exc, TimeoutError):
        text = "timed out"
    elif isinstance(exc, asyncpg.UndefinedTableError) and missing_table:
        text += f" ({missing_table})"
    return StorageUnavailable(f"{at} cannot {what}: {text}")
