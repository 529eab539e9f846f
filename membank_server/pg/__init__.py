"""The PostgreSQL layer every membank component on PostgreSQL shares.

The memory store (``storage.pgvector``), the outbox (``storage.outbox``), the key
store (``security.keys_pg``) and the audit log (``security.audit_pg``) all reach
their database through this package, which imports only ``membank_server.domain``
and the driver (and ``stamina`` for retries):

- ``_connect``: :class:`PoolSettings` (given once) and :class:`Database` (a pool,
  work on it, unpooled sessions for schema work);
- ``_errors``: the one table from driver errors to domain errors;
- ``_dsn``: where a DSN points, and text with its password cut out;
- ``_idents``: names checked where they come from, and quoted;
- ``_dump``: ``pg_dump`` of membank's schemas, streamed (a backup's native dump);
- ``_locks``: a session advisory lock one instance holds at a time (schedules);
- ``_migrations``: per-component migrations in one ``schema_migrations`` table,
  under one advisory lock, adopting tables older code made.
"""

from __future__ import annotations

from membank_server.pg._connect import Database, InTransaction, PoolSettings
from membank_server.pg._dsn import redact, where
from membank_server.pg._dump import PgDump, find_tool
from membank_server.pg._errors import DRIVER_ERRORS, transient, translate
from membank_server.pg._idents import check_ident, qualify, quote_ident
from membank_server.pg._locks import advisory_lock
from membank_server.pg._migrations import (
    MIGRATIONS,
    Migration,
    applied_versions,
    apply_migrations,
    drop_component,
    lock_schema,
    vector_schema,
)

__all__ = [
    "DRIVER_ERRORS",
    "MIGRATIONS",
    "Database",
    "InTransaction",
    "Migration",
    "PgDump",
    "PoolSettings",
    "advisory_lock",
    "applied_versions",
    "apply_migrations",
    "check_ident",
    "drop_component",
    "find_tool",
    "lock_schema",
    "qualify",
    "quote_ident",
    "redact",
    "transient",
    "translate",
    "vector_schema",
    "where",
]
