"""The shared PostgreSQL layer without a database: DSN masking, the error table, settings."""

from __future__ import annotations

import asyncpg  # type: ignore[import-untyped]
import pytest

from membank_server.domain.errors import (
    ConfigError,
    Conflict,
    InvalidInput,
    MembankError,
    StorageUnavailable,
)
from membank_server.pg import (
    Database,
    PoolSettings,
    check_ident,
    redact,
    transient,
    translate,
    where,
)

__all__: list[str] = []

SECRET = "s3cr@t/pw"  # '@' and '/' make the DSN spell it percent-encoded
DSN = "postgresql://membank:s3cr%40t%2Fpw@db.internal:6543/memories"


@pytest.mark.parametrize(
    ("dsn", "text"),
    [
        (DSN, f"login as membank with {SECRET} failed"),
        (DSN, f"could not parse {DSN}"),
        ("postgresql://membank@db.internal/memories?password=plain-pw", "bad plain-pw"),
        ("postgresql://membank:plain-pw@[::1/memories", "postgresql://membank:plain-pw@[::1/x"),
    ],
    ids=["decoded", "encoded", "query", "malformed"],
)
def test_redact_cuts_the_password_in_every_spelling(dsn: str, text: str) -> None:
    cut = redact(text, dsn)

    assert SECRET not in cut and "s3cr%40t%2Fpw" not in cut and "plain-pw" not in cut
    assert "***" in cut


def test_redact_leaves_text_alone_when_the_dsn_has_no_password() -> None:
    text = "connection refused"
    assert redact(text, "postgresql://membank@localhost/db") == text


def test_where_names_the_place_and_nothing_to_log_in_with() -> None:
    assert where(DSN) == "PostgreSQL at db.internal:6543/memories"
    assert where("postgresql://u:pw@host:notaport/db") == "PostgreSQL at an unreadable DSN"


@pytest.mark.parametrize(
    ("exc", "kwargs", "kind", "words"),
    [
        (asyncpg.UniqueViolationError(SECRET), {"conflict": "taken"}, Conflict, "taken"),
        (asyncpg.UniqueViolationError(SECRET), {}, StorageUnavailable, "cannot add"),
        (asyncpg.CharacterNotInRepertoireError(SECRET), {}, InvalidInput, "refused a value"),
        (asyncpg.InvalidPasswordError(SECRET), {"starting": True}, ConfigError, "refused to"),
        (asyncpg.InvalidPasswordError(SECRET), {}, StorageUnavailable, "cannot add"),
        (asyncpg.QueryCanceledError(SECRET), {}, StorageUnavailable, "statement_timeout"),
        (TimeoutError(), {}, StorageUnavailable, "timed out"),
        (ConnectionRefusedError(SECRET), {}, StorageUnavailable, "cannot add"),
        (
            asyncpg.UndefinedTableError(SECRET),
            {"missing_table": "run setup"},
            StorageUnavailable,
            "(run setup)",
        ),
    ],
)
def test_translate_maps_driver_errors_and_never_shows_the_password(
    exc: BaseException, kwargs: dict[str, object], kind: type[MembankError], words: str
) -> None:
    error = translate(exc, "add a key", dsn=DSN, **kwargs)  # type: ignore[arg-type]

    assert type(error) is kind
    assert words in error.message
    assert SECRET not in error.message and SECRET not in repr(error)


def test_only_a_broken_link_is_transient() -> None:
    assert transient(asyncpg.ConnectionDoesNotExistError("gone"))
    assert transient(ConnectionResetError())
    assert not transient(TimeoutError())
    assert not transient(asyncpg.DataError("bad value"))


def test_a_database_repr_names_the_place_not_the_password() -> None:
    db = Database(DSN, PoolSettings(), label="the key store")

    assert SECRET not in repr(db) and "s3cr%40t%2Fpw" not in repr(db)
    assert "db.internal:6543/memories" in repr(db)


def test_pool_settings_refuse_an_impossible_size() -> None:
    with pytest.raises(ConfigError, match="pool_min <= pool_max"):
        PoolSettings(min_size=3, max_size=2)
    with pytest.raises(ConfigError, match="pool_min"):
        PoolSettings(min_size=0)


def test_identifiers_that_need_quoting_are_refused() -> None:
    assert check_ident("memories_2", "prefix") == "memories_2"
    with pytest.raises(ConfigError, match="setting x must be"):
        check_ident('a"; DROP TABLE x; --', "setting x")
    with pytest.raises(ConfigError, match="up to 39"):
        check_ident("a" * 41, "prefix")
    assert check_ident("a" * 63, "schema", longest=63)
