"""API keys, who a request acts as, and whether it may touch a user's memories.

Keys look like ``mbk_<id>_<secret>``: the id names the key in logs, the audit log
and lockouts; the secret is 32 random bytes. Only the SHA-256 of the whole token
is stored (a fast hash is enough for a 256-bit random secret; there is nothing
to brute-force). A verified key is remembered for ``cache_seconds``, so a request
costs no database call; that is also how long another instance may still accept
a key after it is revoked (the revoking instance forgets it at once). A remembered
key's ``expires_at`` is checked on every use: it stops working at that second.

At start, :meth:`AccessService.ensure_admin` applies this rule to the admin key in
``security.admin_key``: while it is configured, it is an admin key, restored if it
was revoked (the operator who wants it gone changes the setting), and any admin key
configured before it is revoked. Without one, the first start creates an admin key.
Break-glass, when every admin key is lost: ``membank keys create NAME --role admin``
works on the key store directly.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import cast

from cachetools import TTLCache

from membank_server.domain.errors import InvalidInput, NotFound
from membank_server.domain.model import USER_ID_PATTERN
from membank_server.domain.ports import KeyStore
from membank_server.domain.security import ApiKey, Principal, Role, Scope

__all__ = ["CONFIGURED_ADMIN", "AccessService", "AdminChanges", "KeySpec", "digest_of", "key_id_of"]

_PREFIX = "mbk_"
#: The name of the admin key adopted from ``security.admin_key``.
CONFIGURED_ADMIN = "configured admin"
_UNSEEN = object()
#: What a key name may not hold (the same rule as the API's KeyCreate.name pattern).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def digest_of(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def key_id_of(token: str) -> str | None:
    """The key id a token claims (for lockouts and logs), if it is shaped like ours."""
    if not token.startswith(_PREFIX):
        return None
    key_id = token[len(_PREFIX) :].split("_", 1)[0]
    return key_id if len(key_id) == 12 and key_id.isalnum() else None


@dataclass(frozen=True, slots=True)
class AdminChanges:
    """What :meth:`AccessService.ensure_admin` did: a new key's token (to print once),
    keys restored or revoked (to audit)."""

    created_token: str | None = field(default=None, repr=False)
    restored: tuple[str, ...] = ()
    revoked: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class KeySpec:
    """What a new key may do; checked by :meth:`AccessService.create_key`."""

    name: str
    role: Role = Role.USER
    scope: Scope = Scope.OWN
    user_id: str | None = None
    team: str | None = None
    expires_at: datetime | None = None
    rate_per_second: float | None = None
    burst: int | None = None

    def check(self, now: datetime, *, internal: bool = False) -> None:
        if not 1 <= len(self.name) <= 128 or _CONTROL.search(self.name):
            raise InvalidInput("name: 1-128 characters, no control characters", {"field": "name"})
        if not internal and self.name == CONFIGURED_ADMIN:
            raise InvalidInput(f"the name {CONFIGURED_ADMIN!r} is reserved", {"field": "name"})
        if self.role is Role.ADMIN and self.scope is not Scope.ALL:
            raise InvalidInput("an admin key has scope all", {"field": "scope"})
        if self.scope is Scope.OWN:
            if self.user_id is None or not USER_ID_PATTERN.match(self.user_id):
                raise InvalidInput(
                    "scope own needs the user_id it is bound to", {"field": "user_id"}
                )
            if self.team is not None:
                raise InvalidInput("scope own takes a user_id, not a team", {"field": "team"})
        elif self.scope is Scope.TEAM:
            if self.team is None or not USER_ID_PATTERN.match(self.team):
                raise InvalidInput("scope team needs the team it is bound to", {"field": "team"})
            if self.user_id is not None:
                raise InvalidInput("scope team takes a team, not a user_id", {"field": "user_id"})
        elif self.user_id is not None or self.team is not None:
            raise InvalidInput("scope all is bound to no user_id or team", {"field": "scope"})
        if self.expires_at is not None and self.expires_at.tzinfo is None:
            raise InvalidInput(
                "expires_at needs a time zone, e.g. 2030-01-01T00:00:00Z", {"field": "expires_at"}
            )
        if self.rate_per_second is not None and not 0 < self.rate_per_second <= 1_000_000:
            raise InvalidInput("rate_per_second must be in (0, 1e6]", {"field": "rate_per_second"})
        if self.burst is not None and not 1 <= self.burst <= 1_000_000:
            raise InvalidInput("burst must be in [1, 1e6]", {"field": "burst"})


class AccessService:
    """Keys and teams, authentication, and the tenant check every request goes through.

    Args:
        keys: Where keys and team membership are stored.
        cache_seconds: How long a verified key or a team membership is remembered.
        clock: The current time (tests pass a fixed one).
    """

    def __init__(
        self,
        keys: KeyStore,
        *,
        cache_seconds: float = 2.0,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.keys = keys
        self._clock = clock
        self._verified: TTLCache[str, tuple[Principal, datetime | None] | None] = TTLCache(
            100_000, cache_seconds
        )
        self._members: TTLCache[tuple[str, str], bool] = TTLCache(100_000, cache_seconds)

    # -- requests ------------------------------------------------------------

    async def authenticate(self, token: str) -> Principal | None:
        """The principal of a usable key, or None (unknown, expired or revoked)."""
        digest = digest_of(token)
        cached = self._verified.get(digest, _UNSEEN)
        if cached is _UNSEEN:
            key = await self.keys.by_digest(digest)
            usable = key is not None and key.usable(self._clock())
            cached = (Principal.of(key), key.expires_at) if usable and key else None
            self._verified[digest] = cached
        if cached is None:
            return None
        principal, expires_at = cast(tuple[Principal, datetime | None], cached)
        if expires_at is not None and expires_at <= self._clock():
            return None
        return principal

    async def may_act_for(self, principal: Principal, user_id: str) -> bool:
        """Whether ``principal`` may see or change ``user_id``'s memories."""
        if principal.scope is Scope.ALL:
            return True
        if principal.scope is Scope.OWN:
            return principal.user_id == user_id
        if principal.team is None:
            return False
        member = self._members.get((principal.team, user_id))
        if member is None:
            member = await self.keys.is_member(principal.team, user_id)
            self._members[(principal.team, user_id)] = member
        return member

    # -- keys ----------------------------------------------------------------

    async def create_key(self, spec: KeySpec, token: str | None = None) -> tuple[ApiKey, str]:
        """A new key and its token, which is shown once and never stored.

        ``token`` adopts a given secret (an admin key from configuration).
        """
        now = self._clock()
        spec.check(now, internal=token is not None)
        key_id = secrets.token_hex(6)
        token = token or f"{_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        key = ApiKey(
            id=key_id,
            name=spec.name,
            role=spec.role,
            scope=spec.scope,
            created_at=now,
            digest=digest_of(token),
            user_id=spec.user_id,
            team=spec.team,
            expires_at=spec.expires_at,
            rate_per_second=spec.rate_per_second,
            burst=spec.burst,
        )
        await self.keys.add(key)
        return key, token

    async def list_keys(self) -> list[ApiKey]:
        return await self.keys.all()

    async def get_key(self, key_id: str) -> ApiKey:
        key = await self.keys.get(key_id)
        if key is None:
            raise NotFound(f"no key {key_id}")
        return key

    async def revoke(self, key_id: str) -> ApiKey:
        """Revoke a key now. Refused (409) when it is an admin key whose revocation would
        leave no usable admin key that never expires; the key store decides that and
        revokes in one step, one revocation at a time."""
        revoked = await self.keys.revoke(key_id, self._clock())
        if revoked is None:
            raise NotFound(f"no key {key_id}")
        self._verified.pop(revoked.digest, None)
        return revoked

    async def ensure_admin(self, token: str | None) -> AdminChanges:
        """Make sure an admin key exists at start (the rule in the module docs)."""
        now = self._clock()
        if token is not None:
            digest = digest_of(token)
            restored: list[str] = []
            key = await self.keys.by_digest(digest)
            if key is None:
                key, _ = await self.create_key(
                    KeySpec(CONFIGURED_ADMIN, Role.ADMIN, Scope.ALL), token
                )
            elif key.revoked_at is not None:
                await self.keys.restore(key.id)
                restored.append(key.id)
            revoked = []
            # A changed security.admin_key replaces the one configured before.
            for old in await self.keys.all():
                if old.name == CONFIGURED_ADMIN and old.digest != digest and old.usable(now):
                    await self.keys.revoke(old.id, now)
                    revoked.append(old.id)
            return AdminChanges(None, tuple(restored), tuple(revoked))
        if any(k.role is Role.ADMIN and k.usable(now) for k in await self.keys.all()):
            return AdminChanges()
        _, new = await self.create_key(KeySpec("first admin", Role.ADMIN, Scope.ALL))
        return AdminChanges(new)

    # -- teams ---------------------------------------------------------------

    async def add_member(self, team: str, user_id: str) -> None:
        _check_id("team", team)
        _check_id("user_id", user_id)
        await self.keys.add_member(team, user_id)
        self._members.pop((team, user_id), None)

    async def remove_member(self, team: str, user_id: str) -> None:
        if not await self.keys.remove_member(team, user_id):
            raise NotFound(f"{user_id} is not in team {team}")
        self._members.pop((team, user_id), None)

    async def members(self, team: str) -> list[str]:
        return await self.keys.members(team)


def _check_id(field: str, value: str) -> None:
    if not USER_ID_PATTERN.match(value):
        raise InvalidInput(f"{field}: 1-128 characters of [A-Za-z0-9_.:@-]", {"field": field})
