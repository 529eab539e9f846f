"""The DSN's password never leaves the PostgreSQL layer, whichever of its four users fails.

Every user (the store, the outbox, the key store, the audit log) is driven down
its failure paths with a password in the DSN: nothing listening, a login the
server refuses, used before it is open, a table gone under it. The password
must appear in no error message, no error repr, no repr of the user, and no log
record. The refused login names the password as its role, so the server's own
message carries it and the layer's masking (``membank_server.pg.redact``) has to
cut it out.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]
import pytest

from membank_server.domain.errors import ConfigError, MembankError, StorageUnavailable
from membank_server.domain.security import AuditEntry
from membank_server.pg import PoolSettings
from membank_server.security.audit_pg import PgAuditLog
from membank_server.security.keys_pg import PgKeyStore
from membank_server.storage.outbox import PgOutbox
from membank_server.storage.pgvector import PgVectorStore

__all__: list[str] = []

_FAST = PoolSettings(max_size=2, connect_timeout=5.0)
_ENTRY = AuditEntry(datetime.now(UTC), "req", "key_1", "127.0.0.1", "x", "y", "ok", 200)


def _pgvector(dsn: str, schema: str) -> Any:
    return PgVectorStore(dsn, dimension=8, schema=schema, pool=_FAST)


def _outbox(dsn: str, schema: str) -> Any:
    return PgOutbox(dsn, schema=schema, pool=_FAST)


def _keys(dsn: str, schema: str) -> Any:
    return PgKeyStore(dsn, schema=schema, pool=_FAST)


def _audit(dsn: str, schema: str) -> Any:
    return PgAuditLog(dsn, schema=schema, pool=_FAST)


#: Each user, a call that needs its pool, and the table that call reads.
USERS: dict[str, tuple[Callable[[str, str], Any], Callable[[Any], Awaitable[Any]], str]] = {
    "pgvector": (_pgvector, lambda s: s.count(), "memories"),
    "outbox": (_outbox, lambda o: o.size(), "memories_outbox"),
    "keys": (_keys, lambda k: k.get("k1"), "api_keys"),
    "audit": (_audit, lambda a: a.read(), "audit_log"),
}


@pytest.fixture(autouse=True)
def _every_log_record(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)


@pytest.fixture
def secret() -> str:
    return f"hunter2_{uuid.uuid4().hex[:10]}"


def _with_login(dsn: str, user: str, password: str, port: int | None = None) -> str:
    parts = urlsplit(dsn)
    netloc = f"{user}:{password}@{parts.hostname}:{port or parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _assert_hidden(
    secret: str, error: BaseException, user: Any, caplog: pytest.LogCaptureFixture
) -> None:
    assert isinstance(error, MembankError)
    assert secret not in error.message
    assert secret not in str(error) and secret not in repr(error)
    assert secret not in repr(user) and secret not in repr(user.db)
    assert not [r for r in caplog.records if secret in r.getMessage()]


@pytest.fixture(params=sorted(USERS))
def user(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.mark.parametrize(
    ("refused", "kind", "says"),
    [
        # Port 1 on loopback: nothing listens there.
        (False, StorageUnavailable, ":1/"),
        # No such role, named like the password: the server's message quotes it.
        (True, ConfigError, "***"),
    ],
    ids=["nothing-listening", "login-refused"],
)
async def test_a_failed_start(
    user: str,
    pg_dsn: str,
    pg_schema: str,
    secret: str,
    caplog: pytest.LogCaptureFixture,
    refused: bool,
    kind: type[MembankError],
    says: str,
) -> None:
    make, _, _ = USERS[user]
    login = (secret, secret, None) if refused else ("membank", secret, 1)
    failing = make(_with_login(pg_dsn, *login), pg_schema)

    with pytest.raises(kind) as caught:
        await failing.start()

    assert says in caught.value.message
    _assert_hidden(secret, caught.value, failing, caplog)


async def test_used_before_it_is_open(
    user: str, pg_dsn: str, pg_schema: str, secret: str, caplog: pytest.LogCaptureFixture
) -> None:
    make, use, _ = USERS[user]
    closed = make(_with_login(pg_dsn, "membank", secret), pg_schema)

    with pytest.raises(StorageUnavailable) as caught:
        await (closed.append(_ENTRY) if user == "audit" else use(closed))

    _assert_hidden(secret, caught.value, closed, caplog)
    await closed.aclose()


async def test_a_table_gone_under_it(
    user: str, pg_dsn: str, pg_schema: str, secret: str, caplog: pytest.LogCaptureFixture
) -> None:
    make, use, table = USERS[user]
    # The test server trusts loopback logins: the password is carried, never checked.
    opened = make(_with_login(pg_dsn, "membank", secret), pg_schema)
    await opened.start()
    admin = await asyncpg.connect(pg_dsn)
    try:
        await admin.execute(f'DROP TABLE "{pg_schema}"."{table}" CASCADE')
    finally:
        await admin.close()

    with pytest.raises(StorageUnavailable) as caught:
        await use(opened)

    assert "does not exist" in caught.value.message
    _assert_hidden(secret, caught.value, opened, caplog)
    await opened.aclose()
