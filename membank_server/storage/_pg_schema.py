"""The PostgreSQL side of membank: connections, errors, migrations, rows and filters.

Shared by ``PgVectorStore`` and ``PgOutbox``. Migrations are numbered per
*component* (``memories:<prefix>``, ``outbox:<prefix>``) in one
``<schema>.schema_migrations`` table, so two prefixes can share a schema. Missing
ones are applied in order in one transaction under one advisory lock (creating
the ``vector`` extension included): instances starting together queue up and the
second finds the work done.

Driver errors become domain errors in :meth:`Connector.translate`: a value
PostgreSQL refuses is ``InvalidInput``; anything else, a statement cancelled by
``statement_timeout`` included, is ``StorageUnavailable``; at start a refused
login or a missing database is a ``ConfigError``. Messages name the host and
database, never the password.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit
from uuid import UUID

import asyncpg  # type: ignore[import-untyped]

from membank_server.domain.errors import (
    ConfigError,
    InvalidInput,
    MembankError,
    StorageUnavailable,
)
from membank_server.domain.integrity import SEALED_PREFIX, vector_problem
from membank_server.domain.model import (
    Event,
    HistoryEvent,
    Memory,
    MemoryRecord,
    MetadataCondition,
    SearchFilter,
    content_hash,
)
from membank_server.storage._checked import damaged

__all__ = [
    "DRIVER_ERRORS",
    "HISTORY_COLUMNS",
    "LIVE",
    "MEMORY_COLUMNS",
    "MEMORY_SELECT",
    "TEMP_HISTORY",
    "TEMP_ROWS",
    "Args",
    "Connector",
    "Migration",
    "PgNames",
    "applied_versions",
    "apply_migrations",
    "check_ident",
    "check_memories",
    "filters_sql",
    "forget_component",
    "history_from_rows",
    "lock_schema",
    "memories_migrations",
    "memory_from_row",
    "quote_ident",
    "record_from_row",
    "record_to_row",
    "to_json",
    "transient",
    "vector_schema",
]

#: Every exception the driver or the socket under it raises.
DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
)
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,39}$(?!\n)")
#: One lock for every membank schema change in a database ("membank" in ASCII).
_LOCK_KEY = 0x6D656D62616E6B
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


def check_ident(value: str, what: str) -> str:
    """Refuse names that would need quoting tricks; they come from settings."""
    if not _IDENT.match(value):
        raise ConfigError(
            f"{what} must be a letter or _ then up to 39 letters, digits or _; got {value!r}"
        )
    return value


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class PgNames:
    """Where one membank collection lives: a schema and a table prefix."""

    def __init__(self, schema: str, prefix: str) -> None:
        self.schema, self.prefix = schema, prefix
        self.history, self.outbox = f"{prefix}_history", f"{prefix}_outbox"
        self.hnsw_index = f"{prefix}_embedding_hnsw"
        self.migrations = self.q("schema_migrations")

    def q(self, name: str) -> str:
        """A name of this schema, qualified and quoted."""
        return f"{quote_ident(self.schema)}.{quote_ident(name)}"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    statements: tuple[str, ...]


def transient(exc: Exception) -> bool:
    """Whether a read may succeed on a fresh connection: the link broke, not the query."""
    if isinstance(exc, TimeoutError):
        return False  # an overloaded server is not helped by the same query again
    return isinstance(exc, (*_TRANSIENT, OSError))


@dataclass(frozen=True, slots=True)
class Connector:
    """How to reach one database, and how to talk about it without its password."""

    dsn: str
    connect_timeout: float = 10.0
    command_timeout: float = 30.0
    statement_timeout_ms: int = 10_000

    @property
    def where(self) -> str:
        # asyncpg takes URL DSNs only (postgresql://user:password@host:port/db).
        parts = urlsplit(self.dsn)
        db = unquote(parts.path.lstrip("/")) or "?"
        return f"PostgreSQL at {parts.hostname or 'localhost'}:{parts.port or 5432}/{db}"

    def settings(self, search_path: str | None = None) -> dict[str, str]:
        settings = {
            "application_name": "membank",
            "statement_timeout": str(self.statement_timeout_ms),
            # A 2xx promises a durable write, whatever the database's default.
            "synchronous_commit": "on",
        }
        if search_path is not None:
            settings["search_path"] = quote_ident(search_path)
        return settings

    def translate(self, exc: BaseException, what: str, *, starting: bool = False) -> MembankError:
        """The domain error for a driver error (``raise c.translate(...) from exc``)."""
        text = str(exc) or type(exc).__name__
        secret = urlsplit(self.dsn).password
        if secret:
            text = text.replace(unquote(secret), "***")
        if isinstance(exc, asyncpg.DataError):
            return InvalidInput(f"{self.where} refused a value while it would {what}: {text}")
        if starting and isinstance(exc, _REFUSED):
            return ConfigError(f"{self.where} refused to {what}: {text}")
        if isinstance(exc, asyncpg.QueryCanceledError):
            text = f"the statement was cancelled (statement_timeout?): {text}"
        elif isinstance(exc, TimeoutError):
            text = "timed out"
        elif isinstance(exc, asyncpg.UndefinedTableError):
            text += " (run `membank collection setup`, or start with migrate on)"
        return StorageUnavailable(f"{self.where} cannot {what}: {text}")

    @contextlib.asynccontextmanager
    async def session(self, what: str) -> AsyncIterator[Any]:
        """A connection outside any pool, for schema work; driver errors translated."""
        try:
            conn = await asyncpg.connect(
                self.dsn,
                timeout=self.connect_timeout,
                command_timeout=self.command_timeout,
                server_settings=self.settings(),
            )
        except DRIVER_ERRORS as exc:
            raise self.translate(exc, what, starting=True) from exc
        try:
            yield conn
            await conn.close()
        except DRIVER_ERRORS as exc:
            conn.terminate()
            raise self.translate(exc, what, starting=True) from exc
        except BaseException:
            conn.terminate()
            raise

    async def pool(
        self,
        size: tuple[int, int],
        search_path: str | None = None,
        init: Callable[[Any], Awaitable[None]] | None = None,
        extra_settings: dict[str, str] | None = None,
    ) -> Any:
        try:
            return await asyncpg.create_pool(
                self.dsn,
                min_size=size[0],
                max_size=size[1],
                timeout=self.connect_timeout,
                command_timeout=self.command_timeout,
                server_settings={**self.settings(search_path), **(extra_settings or {})},
                init=init,
            )
        except DRIVER_ERRORS as exc:
            raise self.translate(exc, "open a connection pool", starting=True) from exc


async def lock_schema(conn: Any) -> None:
    """Serialise schema changes of every membank instance (held until the transaction ends)."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)


async def vector_schema(conn: Any) -> str | None:
    """The schema the ``vector`` extension lives in, or None when it is not installed."""
    found: str | None = await conn.fetchval(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
        " WHERE e.extname = 'vector'"
    )
    return found


async def applied_versions(conn: Any, names: PgNames, component: str) -> set[int]:
    """Versions of a component already applied; empty when nothing is set up."""
    if not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", names.migrations):
        return set()
    rows = await conn.fetch(
        f"SELECT version FROM {names.migrations} WHERE component = $1", component
    )
    return {int(r["version"]) for r in rows}


async def apply_migrations(
    conn: Any,
    names: PgNames,
    component: str,
    build: Callable[[str | None], Sequence[Migration]],
    *,
    needs_vector: bool,
) -> list[int]:
    """Apply a component's missing migrations under the lock; the versions applied now.

    ``build`` gets the ``vector`` extension's schema (created first when
    ``needs_vector``) to qualify the type and operator classes it names.
    """
    async with conn.transaction():
        await lock_schema(conn)
        ext = await vector_schema(conn)
        if ext is None and needs_vector:
            try:
                await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except asyncpg.InsufficientPrivilegeError as exc:
                raise ConfigError(
                    "the vector extension is not installed and this user may not create it: "
                    "run CREATE EXTENSION vector as a superuser once"
                ) from exc
            ext = await vector_schema(conn)
        # Checked first: CREATE SCHEMA IF NOT EXISTS needs CREATE on the database
        # even when the schema is already there.
        if not await conn.fetchval("SELECT to_regnamespace($1) IS NOT NULL", names.schema):
            await conn.execute(f"CREATE SCHEMA {quote_ident(names.schema)}")
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {names.migrations} ("
            " component text NOT NULL, version int NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now(),"
            " PRIMARY KEY (component, version))"
        )
        done = await applied_versions(conn, names, component)
        applied: list[int] = []
        for migration in sorted(build(ext), key=lambda m: m.version):
            if migration.version in done:
                continue
            for statement in migration.statements:
                await conn.execute(statement)
            await conn.execute(
                f"INSERT INTO {names.migrations} (component, version) VALUES ($1, $2)",
                component,
                migration.version,
            )
            applied.append(migration.version)
        return applied


async def forget_component(conn: Any, names: PgNames, component: str) -> None:
    """Drop a component's migration rows (its tables are gone), so start() makes them anew."""
    if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", names.migrations):
        await conn.execute(f"DELETE FROM {names.migrations} WHERE component = $1", component)


# -- the memories tables ---------------------------------------------------------

MEMORY_COLUMNS = (
    "id", "user_id", "agent_id", "session_id", "content", "metadata", "created_at",
    "updated_at", "expires_at", "version", "content_hash", "state", "deleted_at",
    "idempotency", "embedding",
)  # fmt: skip
HISTORY_COLUMNS = (
    "memory_id", "user_id", "version", "event", "content", "metadata", "at",
)  # fmt: skip
#: The Memory fields of a row aliased ``m``.
MEMORY_SELECT = ", ".join(f"m.{c}" for c in MEMORY_COLUMNS[:11])
#: Live rows of ``m`` at the time bound to ``$2``.
LIVE = "m.state = 'live' AND (m.expires_at IS NULL OR m.expires_at > $2)"
#: Per-connection temporary tables that COPY fills before the merge.
TEMP_ROWS, TEMP_HISTORY = "_membank_rows", "_membank_history"


def memories_migrations(
    names: PgNames, dimension: int, opclass: str, m: int, ef_construction: int
) -> Callable[[str | None], list[Migration]]:
    def build(ext: str | None) -> list[Migration]:
        if ext is None:
            raise ConfigError("the vector extension is not installed")
        t, h, p = names.q(names.prefix), names.q(names.history), names.prefix
        return [
            Migration(
                1,
                (
                    f"CREATE TABLE {t} (id uuid PRIMARY KEY, user_id text NOT NULL,"
                    " agent_id text, session_id text, content text NOT NULL,"
                    " metadata jsonb NOT NULL, created_at timestamptz NOT NULL,"
                    " updated_at timestamptz NOT NULL, expires_at timestamptz,"
                    " version int NOT NULL, content_hash text NOT NULL, state text NOT NULL"
                    " CHECK (state IN ('live', 'deleted')), deleted_at timestamptz,"
                    f" idempotency text, embedding {quote_ident(ext)}.vector({dimension}))",
                    f"CREATE INDEX {quote_ident(p + '_user_idx')} ON {t} (user_id, id)",
                    f"CREATE INDEX {quote_ident(p + '_live_hash_idx')} ON {t}"
                    " (user_id, content_hash) WHERE state = 'live'",
                    f"CREATE INDEX {quote_ident(p + '_expires_idx')} ON {t} (expires_at)"
                    " WHERE expires_at IS NOT NULL",
                    f"CREATE INDEX {quote_ident(names.hnsw_index)} ON {t} USING hnsw"
                    f" (embedding {quote_ident(ext)}.{opclass})"
                    f" WITH (m = {m}, ef_construction = {ef_construction})",
                    # Keyed by position: a DELETE event may repeat the last version.
                    f"CREATE TABLE {h} (memory_id uuid NOT NULL, seq int NOT NULL,"
                    " user_id text NOT NULL, version int NOT NULL, event text NOT NULL,"
                    " content text NOT NULL, metadata jsonb NOT NULL, at timestamptz NOT NULL,"
                    " PRIMARY KEY (memory_id, seq))",
                    f"CREATE INDEX {quote_ident(p + '_history_user_idx')} ON {h} (user_id)",
                ),
            ),
            # History kept apart and appended: an event is keyed by what it is, so a
            # write adds its events without reading or renumbering the earlier ones.
            Migration(
                2,
                (
                    f"DELETE FROM {h} a USING {h} b WHERE a.memory_id = b.memory_id"
                    " AND a.version = b.version AND a.event = b.event AND a.seq < b.seq",
                    f"ALTER TABLE {h} DROP COLUMN seq",
                    f"ALTER TABLE {h} ADD PRIMARY KEY (memory_id, version, event)",
                ),
            ),
        ]

    return build


async def check_memories(
    conn: Any, names: PgNames, component: str, dimension: int, opclass: str, where: str
) -> str:
    """Refuse missing tables or ones of another dimension or distance; the vector schema."""
    table = names.q(names.prefix)
    ext = await vector_schema(conn)
    if 1 not in await applied_versions(conn, names, component) or ext is None:
        raise ConfigError(
            f"{where} has no membank table {table}: run `membank collection setup`, "
            "or start with migrate on"
        )
    size = await conn.fetchval(
        "SELECT atttypmod FROM pg_attribute WHERE attrelid = to_regclass($1)"
        " AND attname = 'embedding'",
        table,
    )
    if size != dimension:
        raise ConfigError(
            f"table {table} holds vectors of dimension {size}, "
            f"but storage is set to dimension {dimension}"
        )
    found = await conn.fetchval(
        "SELECT o.opcname FROM pg_index i JOIN pg_opclass o ON o.oid = i.indclass[0]"
        " WHERE i.indexrelid = to_regclass($1)",
        names.q(names.hnsw_index),
    )
    if found != opclass:
        raise ConfigError(
            f"the HNSW index of {table} uses {found}, but the storage distance needs {opclass}"
        )
    return ext


# -- rows and filters ------------------------------------------------------------


def to_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def memory_from_row(row: Any) -> Memory:
    """A row's memory, its content checked against its hash (``domain.integrity``)."""
    memory = _memory(row)
    sealed = memory.content.startswith(SEALED_PREFIX)
    if not sealed and content_hash(memory.content) != memory.content_hash:
        raise damaged(memory.id, "content does not match its hash")
    return memory


def _memory(row: Any) -> Memory:
    return Memory(
        id=UUID(bytes=row["id"].bytes),
        user_id=row["user_id"],
        content=row["content"],
        metadata=json.loads(row["metadata"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        version=row["version"],
        content_hash=row["content_hash"],
        agent_id=row["agent_id"],
        session_id=row["session_id"],
        expires_at=row["expires_at"],
    )


def history_from_rows(rows: Any) -> tuple[HistoryEvent, ...]:
    """Events from ``(event, version, content, metadata, at)`` rows or tuples."""
    return tuple(
        HistoryEvent(Event(event), version, content, json.loads(metadata), at)
        for event, version, content, metadata, at in rows or ()
    )


def record_from_row(row: Any, dimension: int | None = None) -> MemoryRecord:
    embedding = row["embedding"]
    memory = memory_from_row(row)
    vector = embedding.to_list() if embedding is not None else []
    if dimension is not None and vector:
        problem = vector_problem(vector, None, dimension, unit=False)
        if problem is not None:
            raise damaged(memory.id, problem)
    return MemoryRecord(
        memory=memory,
        vector=vector,
        history=history_from_rows(row["history"]) if "history" in row else (),
        deleted_at=row["deleted_at"],
        idempotency=row["idempotency"],
    )


def record_to_row(r: MemoryRecord) -> tuple[Any, ...]:
    m = r.memory
    return (
        m.id, m.user_id, m.agent_id, m.session_id, m.content, to_json(dict(m.metadata)),
        m.created_at, m.updated_at, m.expires_at, m.version, m.content_hash,
        "deleted" if r.deleted_at else "live", r.deleted_at, r.idempotency,
        list(r.vector) if r.vector else None,
    )  # fmt: skip


class Args:
    """Bind parameters of one statement: values never enter the SQL text."""

    def __init__(self, *values: Any) -> None:
        self.values = list(values)

    def add(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


def _typed(value: str | int | float | bool) -> str:
    """A JSON scalar as ``type:text``, the way the SQL below spells a jsonb element."""
    if isinstance(value, bool):
        return f"boolean:{'true' if value else 'false'}"
    return f"{'string' if isinstance(value, str) else 'number'}:{value}"


def _metadata_sql(c: MetadataCondition, args: Args) -> str:
    key = args.add(c.key)
    if c.equals is None and c.any_of is None and c.gte is None and c.lte is None:
        # Set: as Qdrant's "not is_empty", anything but missing, null or [].
        return (
            f"coalesce(jsonb_typeof(m.metadata -> {key}) <> 'null'"
            f" AND m.metadata -> {key} <> '[]'::jsonb, false)"
        )
    elements = (
        f"jsonb_array_elements(CASE jsonb_typeof(m.metadata -> {key}) WHEN 'array'"
        f" THEN m.metadata -> {key} ELSE jsonb_build_array(m.metadata -> {key}) END)"
    )
    typed = "jsonb_typeof(e.v) || ':' || (e.v #>> '{}')"
    if c.any_of is not None:
        predicate = f"{typed} = ANY({args.add([_typed(v) for v in c.any_of])}::text[])"
    elif c.equals is not None and not isinstance(c.equals, float):
        predicate = f"{typed} = {args.add(_typed(c.equals))}"
    else:
        low, high = (c.equals, c.equals) if isinstance(c.equals, float) else (c.gte, c.lte)
        # CASE, not AND: PostgreSQL may evaluate the operands of AND in any order.
        number = "(CASE WHEN jsonb_typeof(e.v) = 'number' THEN (e.v #>> '{}')::numeric END)"
        parts = [f"{number} IS NOT NULL"]
        # A float's shortest repr orders like the float and, as text, cannot overflow.
        if low is not None:
            parts.append(f"{number} >= {args.add(repr(float(low)))}::text::numeric")
        if high is not None:
            parts.append(f"{number} <= {args.add(repr(float(high)))}::text::numeric")
        predicate = " AND ".join(parts)
    return f"EXISTS (SELECT 1 FROM {elements} AS e(v) WHERE {predicate})"


def filters_sql(f: SearchFilter, args: Args) -> list[str]:
    sql: list[str] = []
    for column, op, value in (
        ("agent_id", "=", f.agent_id),
        ("session_id", "=", f.session_id),
        ("created_at", ">=", f.created_after),
        ("created_at", "<=", f.created_before),
    ):
        if value is not None:
            sql.append(f"m.{column} {op} {args.add(value)}")
    sql.extend(_metadata_sql(c, args) for c in f.metadata)
    return sql
