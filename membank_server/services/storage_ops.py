"""Operator work across two stores: compare them, copy one into the other."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from membank_server.domain.backup_ports import SealedFields
from membank_server.domain.model import MemoryRecord
from membank_server.domain.ports import MemoryStore

__all__ = ["Difference", "VerifyReport", "copy_store", "scan_all", "verify_stores"]

_State = tuple[str, str, int, bool]  # user_id, content_hash, version, deleted


@dataclass
class Difference:
    id: str
    user_id: str
    problem: str


@dataclass
class VerifyReport:
    """How two stores differ; ``same`` when they hold the same records."""

    left: str
    right: str
    left_records: int = 0
    right_records: int = 0
    users: int = 0
    users_differing: int = 0
    differences: list[Difference] = field(default_factory=list)
    per_user: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def same(self) -> bool:
        return not self.differences


async def scan_all(store: MemoryStore, batch: int = 500) -> AsyncIterator[list[MemoryRecord]]:
    cursor: str | None = None
    while True:
        records, cursor = await store.scan(cursor, batch)
        if records:
            yield records
        if cursor is None:
            return


async def _states(store: MemoryStore, progress: Callable[[int], None] | None) -> dict[str, _State]:
    out: dict[str, _State] = {}
    async for records in scan_all(store):
        for r in records:
            m = r.memory
            out[str(m.id)] = (m.user_id, m.content_hash, m.version, r.deleted_at is not None)
        if progress is not None:
            progress(len(records))
    return out


async def verify_stores(
    left: MemoryStore,
    right: MemoryStore,
    *,
    progress: Callable[[int], None] | None = None,
    max_listed: int = 100,
) -> VerifyReport:
    """Compare every record: ids, owners, content hashes, versions, deletions."""
    a, b = await _states(left, progress), await _states(right, progress)
    report = VerifyReport(left.backend, right.backend, len(a), len(b))
    per_user: dict[str, list[int]] = {}
    differing: set[str] = set()
    for id_ in sorted(a.keys() | b.keys()):
        sa, sb = a.get(id_), b.get(id_)
        user = (sa or sb)[0]  # type: ignore[index]
        counts = per_user.setdefault(user, [0, 0])
        counts[0] += sa is not None and not sa[3]
        counts[1] += sb is not None and not sb[3]
        problem = None
        if sa is None:
            problem = f"only in {right.backend}"
        elif sb is None:
            problem = f"only in {left.backend}"
        elif sa != sb:
            fields = ("owner", "content hash", "version", "deleted")
            problem = ", ".join(
                f"{n} differs" for n, x, y in zip(fields, sa, sb, strict=True) if x != y
            )
        if problem is not None:
            differing.add(user)
            if len(report.differences) < max_listed:
                report.differences.append(Difference(id_, user, problem))
            elif not report.differences[-1].problem.startswith("..."):
                report.differences.append(Difference("", "", "... (more not listed)"))
    report.users = len(per_user)
    report.users_differing = len(differing)
    report.per_user = {u: (c[0], c[1]) for u, c in per_user.items() if u in differing}
    return report


async def copy_store(
    source: MemoryStore,
    target: MemoryStore,
    *,
    batch: int = 500,
    progress: Callable[[int], None] | None = None,
    sealed: SealedFields | None = None,
) -> Counter[str]:
    """Write every record of ``source`` into ``target`` (idempotent: whole records by id).

    With field encryption on, ``sealed`` gives each sealed record its keyed lexical
    terms first: stores keep the index, not the terms, so the target would otherwise
    index the ciphertext and lexical search would find nothing there.
    """
    done: Counter[str] = Counter()
    async for records in scan_all(source, batch):
        if sealed is not None:
            records = [sealed.indexed(r) for r in records]
        await target.upsert(records)
        done["records"] += len(records)
        done["deleted"] += sum(r.deleted_at is not None for r in records)
        if progress is not None:
            progress(len(records))
    return done
