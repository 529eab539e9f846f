"""What a backup holds besides the memories: keys, teams, the audit log, Redis counts.

Each is small beside the memories and is written whole in every backup, incremental
ones too, so a restore takes them from the last backup of its chain. A restore never
overwrites: a key already there is kept, an audit entry already there is not added
again (a restore can be run twice), popular-query counts are added to the current
window. With one user, only what is that user's: keys bound to them, their team
memberships, their counts; not the audit log, which is the operators'.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from membank_server.domain.errors import CacheUnavailable
from membank_server.domain.ports import (
    AuditLog,
    BackupReader,
    BackupWriter,
    DatabaseDump,
    DurableCounts,
    KeyStore,
    SealedFields,
)
from membank_server.domain.security import ApiKey, AuditEntry

__all__ = ["BackupExtras", "ExtrasRestored", "restore_extras", "write_extras"]

_log = logging.getLogger("membank.backup")
#: As many popular queries as Redis holds: ``top`` with this asks for all of them.
_ALL = 2**31 - 1


@dataclass(frozen=True)
class BackupExtras:
    """The sources a backup reads besides the store, and a restore writes back to."""

    keys: KeyStore | None = None
    audit: AuditLog | None = None
    counts: DurableCounts | None = None
    dump: DatabaseDump | None = None
    sealed: SealedFields | None = None


@dataclass
class ExtrasRestored:
    keys: int = 0
    keys_kept: int = 0
    memberships: int = 0
    audit: int = 0
    counts: int = 0
    warnings: list[str] = field(default_factory=list)


async def _aiter(items: Iterable[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item


async def write_extras(
    w: BackupWriter, extras: BackupExtras, count: Callable[[str, str], None]
) -> list[str]:
    """Write the sections besides the memories; warnings for what could not be read."""
    warnings: list[str] = []
    if extras.keys is not None:
        keys = await extras.keys.all()
        for k in keys:
            if k.user_id:
                count(k.user_id, "keys")
        await w.add_records("keys", _aiter(keys))
        await w.add_records("teams", _aiter(await extras.keys.memberships()))
    if extras.audit is not None:
        await w.add_records("audit", _aiter(await extras.audit.read()))
    if extras.counts is not None:
        try:
            popular = await extras.counts.top(_ALL)
        except CacheUnavailable as exc:
            # A hint for warmup, not data: the backup goes on without it, and says so.
            warnings.append(f"popular-query counts not kept: {exc.message}")
            _log.warning("backup: %s", warnings[-1])
        else:
            await w.add_records("redis", _aiter(popular))
    return warnings


def _audit_key(e: AuditEntry) -> tuple[str, ...]:
    return (e.at.isoformat(), e.request_id, e.action, e.target, e.actor)


async def restore_extras(
    reader: BackupReader, extras: BackupExtras, user: str | None
) -> ExtrasRestored:
    """Write back what the last backup of a chain holds besides memories (module docs)."""
    done = ExtrasRestored()
    if extras.keys is not None:
        async for key in reader.records("keys", ApiKey):
            if user is not None and key.user_id != user:
                continue
            if await extras.keys.get(key.id) is not None:
                done.keys_kept += 1
                continue
            await extras.keys.add(key)
            done.keys += 1
        async for team, member in reader.records("teams", tuple[str, str]):
            if user is None or member == user:
                await extras.keys.add_member(team, member)
                done.memberships += 1
    if extras.audit is not None and user is None:
        there = {_audit_key(e) for e in await extras.audit.read()}
        async for entry in reader.records("audit", AuditEntry):
            if _audit_key(entry) not in there:
                await extras.audit.append(entry)
                done.audit += 1
    if extras.counts is not None:
        rows = [
            row
            async for row in reader.records("redis", tuple[str, bytes, float])
            if user is None or row[0] == user
        ]
        try:
            await extras.counts.add_counts(rows)
            done.counts = len(rows)
        except CacheUnavailable as exc:
            done.warnings.append(f"popular-query counts not restored: {exc.message}")
    return done
