"""The audit trail: who did what, written before the answer leaves, read by admins."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from membank_server.domain.errors import MembankError, Unavailable
from membank_server.domain.ports import AuditLog
from membank_server.domain.security import AuditEntry
from membank_server.services.access import AdminChanges

__all__ = ["AuditTrail"]

_log = logging.getLogger("membank.audit")


class AuditTrail:
    """Appends and reads audit entries.

    Args:
        log: Where entries are kept (a file, a PostgreSQL table); None for no log.
    """

    def __init__(self, log: AuditLog | None) -> None:
        self._log = log

    async def record(self, entry: AuditEntry) -> None:
        """Append ``entry``; a failure is logged, not raised: the action it describes
        has already happened, and its answer still goes."""
        if self._log is None:
            return
        try:
            await self._log.append(entry)
        except MembankError as exc:
            _log.error("audit log append failed for %s %s: %s", entry.action, entry.target, exc)

    async def read(self, since: datetime | None, limit: int) -> list[AuditEntry]:
        """The last ``limit`` entries, from ``since`` when given.

        Raises:
            Unavailable: there is no audit log, or it cannot be read now.
        """
        if self._log is None:
            raise Unavailable("no audit log")
        return await self._log.read(since=since, limit=limit)

    async def admin_changes(self, changes: AdminChanges) -> None:
        """Record what the configured admin key changed at start; the actor is
        ``config``, the server's own settings. A failure here stops the start."""
        for action, key_ids in (("key.restore", changes.restored), ("key.revoke", changes.revoked)):
            for key_id in key_ids:
                _log.warning("%s %s: security.admin_key at start", action, key_id)
                if self._log is None:
                    continue
                await self._log.append(
                    AuditEntry(
                        at=datetime.now(UTC),
                        request_id="startup",
                        actor="config",
                        client="local",
                        action=action,
                        target=f"key:{key_id}",
                        result="ok",
                        status=200,
                        details={"reason": "security.admin_key"},
                    )
                )
