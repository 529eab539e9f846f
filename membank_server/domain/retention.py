"""Which backups a prune keeps: restic's and borg's policy, and chains kept whole.

``keep_last`` keeps the newest N complete backups; ``keep_daily``, ``keep_weekly`` and
``keep_monthly`` keep, for each of the newest N days (ISO weeks, months) that have a
complete backup, the newest backup of it. On top of the rules:

- the newest complete backup is always kept;
- a kept incremental backup keeps its parent, and so on down to its full backup, so
  a prune never breaks a chain it keeps;
- a backup that is not complete (no manifest, or an unreadable one) is kept while it
  is newer than the newest complete backup or younger than ``incomplete_grace``: it
  may still be being written; older, it is a failed backup and goes.

A pure function over :class:`~membank_server.domain.backup.BackupInfo`: a dry run and
the real run plan the same.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from membank_server.domain.backup import BackupInfo
from membank_server.domain.errors import InvalidInput

__all__ = ["PrunePlan", "plan_prune"]


@dataclass(frozen=True, slots=True)
class PrunePlan:
    """The outcome of a plan; both lists newest first.

    Deleting in ``delete``'s order removes an incremental before its parent, so a prune
    that stops half way never leaves a listed backup whose parent is gone.
    """

    keep: tuple[BackupInfo, ...]
    delete: tuple[BackupInfo, ...]
    #: Why each kept backup is kept, by id: ``last``, ``daily 2026-01-31``, ``parent of X``...
    reasons: Mapping[str, tuple[str, ...]]


def _buckets(tz: tzinfo) -> list[tuple[str, Callable[[datetime], Hashable]]]:
    def day(t: datetime) -> Hashable:
        return t.astimezone(tz).date().isoformat()

    def week(t: datetime) -> Hashable:
        year, number, _ = t.astimezone(tz).isocalendar()
        return f"{year}-W{number:02d}"

    def month(t: datetime) -> Hashable:
        return t.astimezone(tz).strftime("%Y-%m")

    return [("daily", day), ("weekly", week), ("monthly", month)]


def plan_prune(
    backups: Sequence[BackupInfo],
    *,
    now: datetime,
    keep_last: int = 0,
    keep_daily: int = 0,
    keep_weekly: int = 0,
    keep_monthly: int = 0,
    incomplete_grace: timedelta = timedelta(hours=24),
    tz: tzinfo = UTC,
) -> PrunePlan:
    """Split ``backups`` into those to keep and those to delete.

    Args:
        backups: Every backup on the target, in any order (see ``Catalog.list``).
        now: The current time, for ``incomplete_grace``.
        keep_last: Keep the newest N complete backups.
        keep_daily: Keep the newest backup of each of the newest N days with one.
        keep_weekly: The same per ISO week.
        keep_monthly: The same per calendar month.
        incomplete_grace: How long a backup without a manifest may be still running.
        tz: The time zone days, weeks and months are counted in.

    Raises:
        InvalidInput: a negative count, or no rule at all (that would keep only the
            newest backup: ask for it with ``keep_last=1``).
    """
    rules = {"last": keep_last, "daily": keep_daily, "weekly": keep_weekly, "monthly": keep_monthly}
    if any(n < 0 for n in rules.values()):
        raise InvalidInput(f"keep counts must be 0 or more: {rules}")
    if not any(rules.values()):
        raise InvalidInput("prune needs a rule: keep_last, keep_daily, keep_weekly or keep_monthly")
    newest_first = sorted(backups, key=lambda b: (b.created_at, b.id), reverse=True)
    complete = [b for b in newest_first if b.complete]
    reasons: dict[str, list[str]] = {}

    def keep(b: BackupInfo, why: str) -> None:
        reasons.setdefault(b.id, []).append(why)

    if complete:
        keep(complete[0], "newest")
    for b in complete[:keep_last]:
        keep(b, "last")
    for rule, bucket in _buckets(tz):
        wanted, seen = rules[rule], set[Hashable]()
        for b in complete:
            if len(seen) >= wanted:
                break
            key = bucket(b.created_at)
            if key not in seen:
                seen.add(key)
                keep(b, f"{rule} {key}")
    by_id = {b.id: b for b in newest_first}
    todo = list(reasons)
    while todo:
        child = by_id[todo.pop()]
        parent = by_id.get(child.parent or "")
        if parent is not None:
            if parent.id not in reasons:
                todo.append(parent.id)
            keep(parent, f"parent of {child.id}")
    newest = complete[0].created_at if complete else None
    for b in newest_first:
        if not b.complete and (
            newest is None or b.created_at >= newest or now - b.created_at < incomplete_grace
        ):
            keep(b, f"{b.status}: may still be being written")
    return PrunePlan(
        keep=tuple(b for b in newest_first if b.id in reasons),
        delete=tuple(b for b in newest_first if b.id not in reasons),
        reasons={k: tuple(v) for k, v in reasons.items()},
    )
