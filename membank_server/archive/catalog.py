"""Catalog: the backups on a target, their manifests and chains; deleting one safely.

A backup is the folder ``<backup id>/`` on the target. With a manifest it is complete;
without one it is incomplete (failed, killed, or still being written). Deletion takes
the manifest first and the parts after, so a backup half deleted looks incomplete,
never complete with parts missing.
"""

from __future__ import annotations

import builtins

from membank_server.archive.crypto import PartCipher
from membank_server.archive.manifest import MANIFEST, Manifest, backup_time
from membank_server.archive.reader import ArchiveReader, VerifyReport, load_manifest
from membank_server.domain.backup import BackupInfo, BackupStatus
from membank_server.domain.errors import BackupCorrupt, BackupNotFound
from membank_server.domain.ports import BackupTarget

__all__ = ["Catalog"]


class Catalog:
    """The backups on one target.

    Args:
        target: Where the backups are.
    """

    def __init__(self, target: BackupTarget) -> None:
        self.target = target

    async def _files(self) -> dict[str, set[str]]:
        """File names (within the backup's folder) by backup id."""
        files: dict[str, set[str]] = {}
        for name in await self.target.list():
            backup_id, _, rest = name.partition("/")
            if rest and backup_time(backup_id) is not None:
                files.setdefault(backup_id, set()).add(rest)
        return files

    async def list(self) -> list[BackupInfo]:
        """Every backup, oldest first, complete or not (one manifest read each)."""
        found = []
        for backup_id, names in sorted((await self._files()).items()):
            started = backup_time(backup_id)
            assert started is not None  # _files keeps backup ids only
            if MANIFEST not in names:
                found.append(BackupInfo(backup_id, started, BackupStatus.INCOMPLETE))
                continue
            try:
                m = await load_manifest(self.target, backup_id)
            except (BackupCorrupt, BackupNotFound):
                found.append(BackupInfo(backup_id, started, BackupStatus.CORRUPT))
                continue
            found.append(_info(m))
        return sorted(found, key=lambda b: (b.created_at, b.id))

    async def manifest(self, backup_id: str) -> Manifest:
        """See :func:`~membank_server.archive.reader.load_manifest`."""
        return await load_manifest(self.target, backup_id)

    async def chain(self, backup_id: str) -> builtins.list[Manifest]:
        """The manifests a restore of ``backup_id`` replays: its full backup first, then
        each incremental on the way, ``backup_id``'s own last.

        Raises:
            BackupNotFound: the backup, or a parent it needs, has no manifest.
            BackupCorrupt: the parents loop, or a full backup names a parent.
        """
        chain: builtins.list[Manifest] = []
        current: str | None = backup_id
        while current is not None:
            if any(m.backup_id == current for m in chain):
                raise BackupCorrupt(f"backup {backup_id}: its chain loops at {current}")
            try:
                manifest = await load_manifest(self.target, current)
            except BackupNotFound:
                if not chain:
                    raise
                raise BackupNotFound(
                    f"backup {chain[-1].backup_id} needs its parent {current}, which is "
                    "missing or incomplete",
                    {"backup": chain[-1].backup_id, "parent": current},
                ) from None
            chain.append(manifest)
            current = manifest.parent if manifest.kind == "incremental" else None
        return chain[::-1]

    async def verify(
        self, backup_id: str, cipher: PartCipher | None = None, *, chain: bool = True
    ) -> builtins.list[VerifyReport]:
        """Check every part of a backup (and, with ``chain``, of every parent it needs),
        oldest first; see :meth:`ArchiveReader.verify`. Keys are checked for every
        backup of the chain before any part is read."""
        manifests = await self.chain(backup_id) if chain else [await self.manifest(backup_id)]
        readers = [ArchiveReader(self.target, m, cipher) for m in manifests]
        return [await r.verify() for r in readers]

    async def delete(self, backup_id: str) -> int:
        """Delete a backup, manifest first; returns how many files went."""
        if backup_time(backup_id) is None:
            raise BackupNotFound(f"not a backup id: {backup_id!r}", {"backup": backup_id})
        names = await self.target.list(f"{backup_id}/")
        if not names:
            raise BackupNotFound(f"{self.target.url}: no backup {backup_id}", {"backup": backup_id})
        manifest = f"{backup_id}/{MANIFEST}"
        for name in sorted(names, key=lambda n: n != manifest):
            await self.target.delete(name)
        return len(names)


def _info(m: Manifest) -> BackupInfo:
    return BackupInfo(
        id=m.backup_id,
        created_at=m.created_at,
        status=BackupStatus.COMPLETE,
        kind=m.kind,
        parent=m.parent,
        stored_bytes=m.stored_bytes,
        memories=m.records("memories"),
        users=m.user_count if m.user_count is not None else len(m.users),
    )
