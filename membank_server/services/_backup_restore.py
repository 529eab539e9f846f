"""Restoring a backup, and checking one: the chain verified whole, then replayed.

A restore checks everything before it writes anything: the keys of every backup of
the chain (``BackupKeyError``), that this server can store what it holds (the vector
dimension, the embedder, the data keys of field-encrypted values), that the store is
empty (unless forced), and then every part of every backup of the chain, read to its
end (``BackupCorrupt`` naming the part). Only then are records written, oldest backup
first: its records upserted as they were (ids, versions, timestamps, history,
tombstones), then the records it lists as erased removed. Writes overlap the reading
of the next records; an upsert is idempotent, so a restore stopped half way can be
run again with ``force``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from uuid import UUID

from membank_server.domain.backup_ports import BackupManifest, BackupSource, SealedFields
from membank_server.domain.errors import (
    BackupError,
    BackupKeyError,
    Conflict,
    DimensionMismatch,
)
from membank_server.domain.model import MemoryRecord
from membank_server.domain.ports import BackupArchive, BackupReader, MemoryStore
from membank_server.services._backup_extras import BackupExtras, ExtrasRestored, restore_extras
from membank_server.services._backup_index import ParentIndex, record_state

__all__ = [
    "Progress",
    "Reservoir",
    "RestorePlan",
    "RestoreReport",
    "VerifyReport",
    "check_chain",
    "check_empty",
    "compare_scratch",
    "replay",
    "restore_chain",
    "verify_all",
]

Progress = Callable[[str, int, int | None], None]
_ROW = tuple[str, str, int, bool, int]


@dataclass(frozen=True)
class RestorePlan:
    """What a restore was asked."""

    user: str | None = None
    force: bool = False
    batch: int = 1000


@dataclass(frozen=True)
class RestoreReport:
    backup_id: str
    chain: tuple[str, ...]
    records: int
    erased: int
    extras: ExtrasRestored
    seconds: float


@dataclass
class VerifyReport:
    backup_id: str
    chain: tuple[str, ...]
    parts: int
    records: int
    stored_bytes: int
    #: With ``deep``: what a restore into a scratch store did not bring back as written.
    problems: list[str] = field(default_factory=list)
    compared: int = 0
    sampled: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def check_chain(
    chain: Sequence[BackupManifest], source: BackupSource, extras: BackupExtras, force: bool
) -> None:
    """Refuse what this server cannot store as the backups hold it (module docs)."""
    last = chain[-1]
    if last.source.dimension is not None and last.source.dimension != source.dimension:
        raise DimensionMismatch(
            f"backup {last.id} holds {last.source.dimension}-d vectors; this server stores "
            f"{source.dimension}-d: restore with the embedder the backup was made with"
        )
    if (
        not force
        and last.source.embedder
        and source.embedder
        and last.source.embedder != source.embedder
    ):
        raise BackupError(
            f"backup {last.id} was made with embedder {last.source.embedder}, this server "
            f"uses {source.embedder}: their vectors do not compare (--force restores anyway)"
        )
    for m in chain:
        described = m.source.settings.get("field_encryption")
        if not described:
            continue
        if extras.sealed is None:
            raise BackupKeyError(
                f"backup {m.id} holds field-encrypted values: restore with field encryption "
                "on (security.encryption) and the data keys they were sealed with"
            )
        problems = extras.sealed.missing(described)
        if problems:
            raise BackupKeyError(
                f"backup {m.id} holds field-encrypted values this server cannot open: "
                + "; ".join(problems)
            )


async def check_empty(into: MemoryStore, user: str | None) -> None:
    if user is not None:
        held = await into.count(user)
        if held:
            raise Conflict(
                f"user {user} already has {held} memories in the store: --force restores "
                "over them (records of the backup replace those with their ids)"
            )
        return
    found, _ = await into.scan(None, 1)
    if found:
        raise Conflict(
            "the store is not empty: restore into an empty store, or --force to write the "
            "backup's records over it (its records replace those with their ids; the "
            "others are kept)"
        )


async def verify_all(readers: Sequence[BackupReader], tell: Progress) -> int:
    total = sum(r.manifest.stored_bytes for r in readers)
    done = 0

    def step(n: int) -> None:
        nonlocal done
        done += n
        tell("verify", done, total)

    records = 0
    for r in readers:
        records += await r.verify(step)
    return records


class _Writes:
    """Upserts in flight, at most ``depth`` at once; the first failure stops the rest."""

    def __init__(self, into: MemoryStore, depth: int = 2) -> None:
        self._into, self._depth = into, depth
        self._pending: set[asyncio.Task[None]] = set()

    async def add(self, batch: list[MemoryRecord]) -> None:
        while len(self._pending) >= self._depth:
            done, self._pending = await asyncio.wait(
                self._pending, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                task.result()
        self._pending.add(asyncio.create_task(self._into.upsert(batch)))

    async def drain(self) -> None:
        try:
            await asyncio.gather(*self._pending)
        finally:
            for task in self._pending:
                task.cancel()
            self._pending.clear()


async def replay(
    reader: BackupReader,
    into: MemoryStore,
    plan: RestorePlan,
    tell: Callable[[int], None],
    seen: Callable[[MemoryRecord], None] | None = None,
    sealed: SealedFields | None = None,
) -> tuple[int, int]:
    """Write one backup's records, then remove those it lists as erased; (written, erased).
    With ``sealed``, sealed records get their keyed lexical terms back first."""
    writes, batch, written = _Writes(into), list[MemoryRecord](), 0
    try:
        async for r in reader.records("memories", MemoryRecord):
            if plan.user is not None and r.memory.user_id != plan.user:
                continue
            if seen is not None:
                seen(r)
            batch.append(r if sealed is None else sealed.indexed(r))
            if len(batch) >= plan.batch:
                await writes.add(batch)
                written += len(batch)
                tell(len(batch))
                batch = []
        if batch:
            await writes.add(batch)
            written += len(batch)
            tell(len(batch))
    finally:
        await writes.drain()
    gone = [
        UUID(memory_id)
        async for memory_id, user in reader.records("erased", tuple[str, str])
        if plan.user is None or user == plan.user
    ]
    for at in range(0, len(gone), plan.batch):
        await into.discard(gone[at : at + plan.batch])
    return written, len(gone)


async def restore_chain(
    archive: BackupArchive,
    backup_id: str,
    into: MemoryStore,
    source: BackupSource,
    extras: BackupExtras,
    plan: RestorePlan,
    tell: Progress,
) -> RestoreReport:
    """See the module docs."""
    started = time.monotonic()
    chain = await archive.chain(backup_id)
    readers = [await archive.reader(m.id) for m in chain]
    check_chain(chain, source, extras, plan.force)
    if not plan.force:
        await check_empty(into, plan.user)
    await verify_all(readers, tell)
    total = sum(m.sections.get("memories", 0) for m in chain)
    written = erased = 0

    def step(n: int) -> None:
        nonlocal written
        written += n
        tell("memories", written, None if plan.user else total)

    for reader in readers:
        _, gone = await replay(reader, into, plan, step, sealed=extras.sealed)
        erased += gone
    tell("keys, audit", written, None)
    restored = await restore_extras(readers[-1], extras, plan.user)
    return RestoreReport(
        backup_id=backup_id,
        chain=tuple(m.id for m in chain),
        records=written,
        erased=erased,
        extras=restored,
        seconds=time.monotonic() - started,
    )


async def compare_scratch(
    last: BackupReader, scratch: MemoryStore, sample: Sequence[MemoryRecord], report: VerifyReport
) -> None:
    """What a scratch store restored from a chain holds, against its last backup's index
    and a sample of its records, read back one by one."""
    expected = ParentIndex()
    async for row in last.records("index", _ROW):
        expected.add_row(row)
    want = len(expected)
    cursor: str | None = None
    while True:
        page, cursor = await scratch.scan(cursor, 1000)
        for r in page:
            report.compared += 1
            if expected.changed(r, record_state(r)):
                report.problems.append(f"memory {r.memory.id}: not as the backup's index says")
        if cursor is None:
            break
    missing = sum(1 for _ in expected.gone())
    if missing:
        report.problems.append(f"{missing} of {want} memories of the index were not restored")
    for r in sample:
        report.sampled += 1
        problem = await _differs(scratch, r)
        if problem:
            report.problems.append(f"memory {r.memory.id}: {problem}")


async def _differs(scratch: MemoryStore, r: MemoryRecord) -> str | None:
    m = r.memory
    got = (await scratch.get(m.user_id, [m.id])).get(m.id)
    if got is None:
        return "not restored"
    if got.memory != m or got.deleted_at != r.deleted_at:
        return "restored with other fields"
    if got.vector != r.vector:
        return "restored with another vector"
    history = await scratch.history(m.user_id, m.id)
    if tuple(history) != tuple(h for h in r.history if h.version <= m.version):
        return "restored with another history"
    return None


class Reservoir:
    """A uniform sample of up to ``size`` records of a stream (seeded: repeatable)."""

    def __init__(self, size: int, seed: int = 0) -> None:
        self.size, self.items, self._seen = size, list[MemoryRecord](), 0
        self._rng = random.Random(seed)

    def __call__(self, r: MemoryRecord) -> None:
        self._seen += 1
        if len(self.items) < self.size:
            self.items.append(r)
            return
        at = self._rng.randrange(self._seen)
        if at < self.size:
            self.items[at] = r
