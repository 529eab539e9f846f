"""Rows of the key tables to and from :class:`ApiKey`, for the SQLite and PostgreSQL stores."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from membank_server.domain.security import ApiKey, Role, Scope

__all__ = [
    "COLUMNS",
    "LAST_ADMIN",
    "key_of",
    "row_of",
]

COLUMNS = (
    "id",
    "name",
    "role",
    "scope",
    "user_id",
    "team",
    "digest",
    "created_at",
    "expires_at",
    "revoked_at",
    "rate_per_second",
    "burst",
)


#: Why a revocation was refused.
LAST_ADMIN = "this would leave no usable admin key that never expires; create another one first"


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value))


def key_of(row: Mapping[str, Any]) -> ApiKey:
    created = _time(row["created_at"])
    assert created is not None
    return ApiKey(
        id=row["id"],
        name=row["name"],
        role=Role(row["role"]),
        scope=Scope(row["scope"]),
        created_at=created,
        digest=row["digest"],
        user_id=row["user_id"],
        team=row["team"],
        expires_at=_time(row["expires_at"]),
        revoked_at=_time(row["revoked_at"]),
        rate_per_second=row["rate_per_second"],
        burst=row["burst"],
    )


def row_of(key: ApiKey, *, iso: bool) -> tuple[Any, ...]:
    """The key as a row in COLUMNS order; ``iso`` writes times as text (SQLite)."""

    def t(value: datetime | None) -> Any:
        return value.isoformat() if iso and value is not None else value

    return (
        key.id,
        key.name,
        key.role.value,
        key.scope.value,
        key.user_id,
        key.team,
        key.digest,
        t(key.created_at),
        t(key.expires_at),
        t(key.revoked_at),
        key.rate_per_second,
        key.burst,
    )
