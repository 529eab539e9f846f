"""The key store contract on both stores: SQLite on disk and the real PostgreSQL.

Also AccessService over each: authentication, tenant checks, revocation and the
first admin key, with nothing faked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import asyncpg  # type: ignore[import-untyped]
import pytest

from membank_server.domain.errors import Conflict, InvalidInput
from membank_server.domain.ports import KeyStore
from membank_server.domain.security import ApiKey, Role, Scope
from membank_server.security.keys_pg import PgKeyStore
from membank_server.security.keys_sqlite import SqliteKeyStore
from membank_server.services.access import (
    AccessService,
    AdminChanges,
    KeySpec,
    digest_of,
    key_id_of,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
async def keys(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[KeyStore]:
    store: KeyStore
    schema = f"k_{uuid4().hex[:10]}"
    if request.param == "sqlite":
        store = SqliteKeyStore(tmp_path / "sec" / "keys.db")
    else:
        store = PgKeyStore(request.getfixturevalue("pg_dsn"), schema=schema)
    await store.start()
    yield store
    await store.aclose()
    if request.param == "postgres":
        conn = await asyncpg.connect(request.getfixturevalue("pg_dsn"))
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
        await conn.close()


def _key(key_id: str = "k1", **kw: object) -> ApiKey:
    base: dict[str, object] = {
        "id": key_id,
        "name": "n",
        "role": Role.USER,
        "scope": Scope.OWN,
        "created_at": NOW,
        "digest": f"d-{key_id}",
        "user_id": "alice",
    }
    return ApiKey(**{**base, **kw})  # type: ignore[arg-type]


async def test_round_trip_and_lookups(keys: KeyStore) -> None:
    key = _key(expires_at=NOW + timedelta(days=1), rate_per_second=5.0, burst=10)
    await keys.add(key)
    assert await keys.get("k1") == key
    assert await keys.by_digest("d-k1") == key
    assert await keys.by_digest("nope") is None
    assert await keys.get("nope") is None
    await keys.add(_key("k2", role=Role.ADMIN, scope=Scope.ALL, user_id=None))
    assert [k.id for k in await keys.all()] == ["k1", "k2"]


async def test_ids_and_digests_are_unique(keys: KeyStore) -> None:
    await keys.add(_key())
    with pytest.raises(Conflict):
        await keys.add(_key())
    with pytest.raises(Conflict):
        await keys.add(_key("k9", digest="d-k1"))


async def test_revoke_is_idempotent(keys: KeyStore) -> None:
    await keys.add(_key())
    first = await keys.revoke("k1", NOW)
    assert first is not None and first.revoked_at == NOW
    again = await keys.revoke("k1", NOW + timedelta(hours=1))
    assert again is not None and again.revoked_at == NOW
    assert await keys.revoke("nope", NOW) is None


async def test_teams(keys: KeyStore) -> None:
    await keys.add_member("t", "bob")
    await keys.add_member("t", "alice")
    await keys.add_member("t", "alice")
    assert await keys.members("t") == ["alice", "bob"]
    assert await keys.is_member("t", "bob")
    assert not await keys.is_member("other", "bob")
    assert await keys.remove_member("t", "bob")
    assert not await keys.remove_member("t", "bob")
    assert await keys.members("t") == ["alice"]


async def test_access_over_a_real_store(keys: KeyStore) -> None:
    clock = [NOW]
    access = AccessService(keys, cache_seconds=60, clock=lambda: clock[0])
    first = (await access.ensure_admin(None)).created_token
    assert first is not None and key_id_of(first) is not None
    assert await access.ensure_admin(None) == AdminChanges()
    admin = await access.authenticate(first)
    assert admin is not None and admin.is_admin

    alice, token = await access.create_key(KeySpec("a", user_id="alice"))
    assert alice.digest == digest_of(token) and token not in repr(alice)
    p = await access.authenticate(token)
    assert p is not None and p.key_id == alice.id == key_id_of(token)
    assert await access.may_act_for(p, "alice")
    assert not await access.may_act_for(p, "bob")
    assert await access.authenticate(token + "x") is None

    _, team_token = await access.create_key(KeySpec("t", scope=Scope.TEAM, team="t1"))
    team = await access.authenticate(team_token)
    assert team is not None
    assert not await access.may_act_for(team, "carol")
    await access.add_member("t1", "carol")
    assert await access.may_act_for(team, "carol")
    await access.remove_member("t1", "carol")
    assert not await access.may_act_for(team, "carol")

    await access.revoke(alice.id)
    assert await access.authenticate(token) is None, "the revoking instance forgets at once"
    with pytest.raises(Conflict):
        await access.revoke(admin.key_id)

    _, short = await access.create_key(
        KeySpec("s", user_id="alice", expires_at=NOW + timedelta(seconds=30))
    )
    clock[0] = NOW + timedelta(minutes=1)
    fresh = AccessService(keys, cache_seconds=60, clock=lambda: clock[0])
    assert await fresh.authenticate(short) is None, "expired"


async def test_configured_admin_key_is_adopted(keys: KeyStore) -> None:
    access = AccessService(keys)
    configured = "c" * 40
    assert await access.ensure_admin(configured) == AdminChanges()
    assert await access.ensure_admin(configured) == AdminChanges()
    principal = await access.authenticate(configured)
    assert principal is not None and principal.is_admin
    assert len(await keys.all()) == 1
    stored = (await keys.all())[0]
    assert configured not in stored.digest and stored.digest == digest_of(configured)


@pytest.mark.parametrize(
    "spec",
    [
        KeySpec("x", Role.USER, Scope.OWN),
        KeySpec("x", Role.USER, Scope.OWN, user_id="bad id"),
        KeySpec("x", Role.USER, Scope.TEAM),
        KeySpec("x", Role.ADMIN, Scope.OWN, user_id="a"),
        KeySpec("x", Role.USER, Scope.ALL, user_id="a"),
        KeySpec("", Role.USER, Scope.OWN, user_id="a"),
        KeySpec("x", Role.USER, Scope.OWN, user_id="a", burst=0),
    ],
)
async def test_bad_specs(keys: KeyStore, spec: KeySpec) -> None:
    with pytest.raises(InvalidInput):
        await AccessService(keys).create_key(spec)
    assert await keys.all() == []


async def test_named_secrets_are_made_once_and_kept(keys: KeyStore) -> None:
    first = await keys.secret("idempotency")
    assert len(first) == 32
    assert await keys.secret("idempotency") == first
    assert await keys.secret("other") != first
