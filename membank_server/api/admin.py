"""Admin functions over HTTP: API keys, teams, the audit log, data-key rotation."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from membank_server.api._params import instant
from membank_server.api.errors import responses
from membank_server.api.schemas import IdStr
from membank_server.api.tenancy import admin_only, audit_note, principal_of
from membank_server.domain.errors import Conflict
from membank_server.domain.model import USER_ID_PATTERN
from membank_server.domain.security import ApiKey, Role, Scope
from membank_server.services.access import AccessService, KeySpec
from membank_server.services.audit import AuditTrail
from membank_server.services.rotation import DataKeyRotation

__all__ = [
    "AdminController",
    "AuditRead",
    "EncryptionRead",
    "KeyCreate",
    "KeyCreated",
    "KeyRead",
    "RotationRead",
    "WhoAmI",
    "whoami",
]


Access = NamedDependency[AccessService]
Rotation = NamedDependency[DataKeyRotation]
KeyIdPath = Annotated[str, PathParameter(pattern=r"^[A-Za-z0-9]{1,64}$(?!\n)")]
NamePath = Annotated[str, PathParameter(pattern=USER_ID_PATTERN.pattern)]


class KeyCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]
    role: Role = Role.USER
    scope: Scope = Scope.OWN
    user_id: IdStr | None = None
    team: IdStr | None = None
    expires_at: Annotated[datetime, msgspec.Meta(tz=True)] | None = None
    # ge, not gt: the OpenAPI generator drops an exclusive minimum on an optional field.
    rate_per_second: Annotated[float, msgspec.Meta(ge=0.001, le=1_000_000)] | None = None
    burst: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] | None = None


class KeyRead(msgspec.Struct, kw_only=True):
    id: str
    name: str
    role: Role
    scope: Scope
    user_id: str | None
    team: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    rate_per_second: float | None
    burst: int | None

    @classmethod
    def of(cls, k: ApiKey) -> KeyRead:
        return cls(
            id=k.id,
            name=k.name,
            role=k.role,
            scope=k.scope,
            user_id=k.user_id,
            team=k.team,
            created_at=k.created_at,
            expires_at=k.expires_at,
            revoked_at=k.revoked_at,
            rate_per_second=k.rate_per_second,
            burst=k.burst,
        )


class KeyCreated(msgspec.Struct, kw_only=True):
    key: KeyRead
    #: The token, shown this once; only its hash is stored.
    secret: str


class AuditRead(msgspec.Struct, kw_only=True):
    at: datetime
    request_id: str
    #: A key id, ``anonymous`` or ``cli:<os user>``; never key material.
    actor: str
    client: str
    action: str
    target: str
    result: str
    status: int
    details: dict[str, Any]


class RotationRead(msgspec.Struct, kw_only=True):
    state: str
    active_key: str | None
    total: int
    done: int
    usage_before: dict[str, int]
    usage_after: dict[str, int]
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None


class EncryptionRead(msgspec.Struct, kw_only=True):
    active_key: str
    #: Stored records per data key id ("plaintext": written before encryption was on).
    usage: dict[str, int]
    rotation: RotationRead


class WhoAmI(msgspec.Struct, kw_only=True):
    key_id: str
    role: Role
    scope: Scope
    user_id: str | None
    team: str | None


def _audit(request: Request[Any, Any, Any], target: str, **details: Any) -> None:
    note = audit_note(request.scope)
    note.target, note.details = target, details


@get(
    "/v1/whoami",
    tags=["keys"],
    summary="The key this request is made with",
    operation_id="whoami",
    responses=responses(),
)
async def whoami(request: Request[Any, Any, Any]) -> WhoAmI:
    p = principal_of(request)
    return WhoAmI(key_id=p.key_id, role=p.role, scope=p.scope, user_id=p.user_id, team=p.team)


class AdminController(Controller):
    """Everything here needs an admin key; every change is audited."""

    path = "/v1/admin"
    tags = ["admin"]
    guards = [admin_only]

    @post(
        "/keys",
        status_code=HTTP_201_CREATED,
        summary="Create an API key (its secret is in this answer only)",
        operation_id="create_api_key",
        responses=responses(404, 400, 409, 415, 422, 503),
        opt={"audit": "key.create"},
    )
    async def create_key(
        self, request: Request[Any, Any, Any], access: Access, data: JSONBody[KeyCreate]
    ) -> KeyCreated:
        spec = KeySpec(**msgspec.structs.asdict(data))
        key, secret = await access.create_key(spec)
        _audit(request, f"key:{key.id}", role=key.role, scope=key.scope, name=key.name)
        return KeyCreated(key=KeyRead.of(key), secret=secret)

    @get(
        "/keys",
        summary="Every API key (never their secrets)",
        operation_id="list_api_keys",
        responses=responses(404, 422, 503),
    )
    async def list_keys(self, access: Access) -> list[KeyRead]:
        return [KeyRead.of(k) for k in await access.list_keys()]

    @get(
        "/keys/{key_id:str}",
        summary="One API key",
        operation_id="get_api_key",
        responses=responses(404, 422, 503),
    )
    async def get_key(self, access: Access, key_id: KeyIdPath) -> KeyRead:
        return KeyRead.of(await access.get_key(key_id))

    @post(
        "/keys/{key_id:str}/revoke",
        status_code=HTTP_200_OK,
        summary="Revoke an API key (it stays listed, with revoked_at)",
        operation_id="revoke_api_key",
        responses=responses(404, 409, 422, 503),
        opt={"audit": "key.revoke"},
    )
    async def revoke_key(
        self, request: Request[Any, Any, Any], access: Access, key_id: KeyIdPath
    ) -> KeyRead:
        if principal_of(request).key_id == key_id:
            # A request never locks out the key it is made with: another admin revokes it.
            raise Conflict("a key cannot revoke itself; revoke it with another admin key")
        return KeyRead.of(await access.revoke(key_id))

    @get(
        "/teams/{team:str}/members",
        summary="The users a team key may act for",
        operation_id="list_team_members",
        responses=responses(404, 422, 503),
    )
    async def members(self, access: Access, team: NamePath) -> list[str]:
        return await access.members(team)

    @put(
        "/teams/{team:str}/members/{user_id:str}",
        status_code=HTTP_204_NO_CONTENT,
        summary="Add a user to a team",
        operation_id="add_team_member",
        responses=responses(404, 422, 503),
        opt={"audit": "team.add_member"},
    )
    async def add_member(self, access: Access, team: NamePath, user_id: NamePath) -> None:
        await access.add_member(team, user_id)

    @delete(
        "/teams/{team:str}/members/{user_id:str}",
        status_code=HTTP_204_NO_CONTENT,
        summary="Remove a user from a team",
        operation_id="remove_team_member",
        responses=responses(404, 422, 503),
        opt={"audit": "team.remove_member"},
    )
    async def remove_member(self, access: Access, team: NamePath, user_id: NamePath) -> None:
        await access.remove_member(team, user_id)

    @get(
        "/audit",
        summary="The last audit entries",
        operation_id="read_audit_log",
        responses=responses(422, 503),
    )
    async def audit(
        self,
        audit_trail: NamedDependency[AuditTrail],
        since: Annotated[
            str | None,
            QueryParameter(format="date-time", description="an RFC 3339 time with an offset"),
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=10_000)] = 100,
    ) -> list[AuditRead]:
        entries = await audit_trail.read(since=instant(since, "since"), limit=limit)
        return [AuditRead(**dataclasses.asdict(e)) for e in entries]

    @get(
        "/encryption",
        summary="Data keys in use and the state of the last rotation",
        operation_id="get_encryption_status",
        responses=responses(404, 422, 503),
    )
    async def encryption(self, rotation: Rotation) -> EncryptionRead:
        return EncryptionRead(
            active_key=rotation.active_key,
            usage=await rotation.usage(),
            rotation=RotationRead(**dataclasses.asdict(rotation.status)),
        )

    @post(
        "/encryption/rotate",
        status_code=202,
        summary="Re-encrypt every record with the active data key, in the background",
        operation_id="rotate_data_keys",
        description="Reloads the key ring (keys file) first; progress at GET /v1/admin/encryption.",
        responses=responses(404, 409, 422, 503),
        opt={"audit": "encryption.rotate"},
    )
    async def rotate(self, rotation: Rotation) -> Response[RotationRead]:
        status = await rotation.begin()
        return Response(RotationRead(**dataclasses.asdict(status)), status_code=202)
