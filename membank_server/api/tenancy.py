"""Which users' memories a request may touch, and who may use admin functions.

Outside its scope a key gets 404 for anything that reads or changes existing
memories (the same answer as a memory that does not exist, so nothing leaks),
403 when it tries to create memories for another user or to use an admin function.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from membank_server.api.audit_note import AuditNote, audit_note
from membank_server.domain.errors import Forbidden, NotFound
from membank_server.domain.security import Principal
from membank_server.services.access import AccessService

__all__ = ["AuditNote", "Tenancy", "admin_only", "audit_note", "principal_of"]

_NOT_FOUND = "no memory with this id for this user"


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    user = connection.scope.get("user")
    if not isinstance(user, Principal):
        # The security middleware sets it on every non-public route; reaching here
        # without one is a wiring mistake, and must not become access.
        raise Forbidden("no principal for this request")
    return user


def admin_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Litestar guard: admin functions need a key with the admin role."""
    if not principal_of(connection).is_admin:
        raise Forbidden("this needs an admin key")


class Tenancy:
    """The tenant check of one request."""

    def __init__(
        self,
        access: AccessService | None,
        principal: Principal,
        note: AuditNote | None = None,
    ) -> None:
        self.access = access
        self.principal = principal
        self._note = note or AuditNote()

    async def _allowed(self, user_id: str) -> bool:
        # The checked user is what the audit line names: the value the handler uses.
        self._note.user = user_id
        if self.access is None:
            return self.principal.is_admin
        return await self.access.may_act_for(self.principal, user_id)

    async def read(self, user_id: str) -> None:
        """Reading or changing existing memories of ``user_id``: 404 outside the scope."""
        if not await self._allowed(user_id):
            raise NotFound(_NOT_FOUND)

    async def create(self, user_ids: set[str]) -> None:
        """Creating memories for ``user_ids``: 403 outside the scope."""
        for user_id in sorted(user_ids):
            if not await self._allowed(user_id):
                raise Forbidden(f"this key may not write memories of user {user_id}")
