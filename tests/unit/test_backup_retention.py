"""plan_prune on synthetic dated backups: exactly the expected sets, chains kept whole."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from membank_server.domain.backup import BackupInfo, BackupStatus
from membank_server.domain.errors import InvalidInput
from membank_server.domain.retention import plan_prune

__all__: list[str] = []


def _b(
    when: str,
    *,
    parent: str | None = None,
    status: BackupStatus = BackupStatus.COMPLETE,
    name: str | None = None,
) -> BackupInfo:
    at = datetime.fromisoformat(when).replace(tzinfo=UTC)
    kind = None if status is not BackupStatus.COMPLETE else ("incremental" if parent else "full")
    return BackupInfo(name or when, at, status, kind=kind, parent=parent)


def _ids(backups: tuple[BackupInfo, ...]) -> list[str]:
    return [b.id for b in backups]


def _daily_series() -> list[BackupInfo]:
    """A backup at 02:00 every day of 2026-01-01..2026-03-01, and a second one at 14:00
    on the last two days. 2026-03-01 is a Sunday: ISO week 9 is Feb 23..Mar 1."""
    start = datetime(2026, 1, 1, 2, tzinfo=UTC)
    days = [start + timedelta(days=n) for n in range(60)]
    assert days[-1].date().isoformat() == "2026-03-01"
    found = [_b(d.strftime("%Y-%m-%dT%H:%M")) for d in days]
    return [*found, _b("2026-02-28T14:00"), _b("2026-03-01T14:00")]


NOW = datetime(2026, 3, 1, 15, tzinfo=UTC)


def test_keep_last() -> None:
    plan = plan_prune(_daily_series(), now=NOW, keep_last=3)
    assert _ids(plan.keep) == ["2026-03-01T14:00", "2026-03-01T02:00", "2026-02-28T14:00"]
    assert len(plan.delete) == 62 - 3


def test_keep_daily_weekly_monthly_exact_set() -> None:
    plan = plan_prune(_daily_series(), now=NOW, keep_daily=7, keep_weekly=4, keep_monthly=6)
    assert _ids(plan.keep) == [
        "2026-03-01T14:00",  # newest; daily Mar 1; week 9; month 03
        "2026-02-28T14:00",  # daily Feb 28 (the newer of that day's two); month 02
        "2026-02-27T02:00",
        "2026-02-26T02:00",
        "2026-02-25T02:00",
        "2026-02-24T02:00",
        "2026-02-23T02:00",  # the 7th day
        "2026-02-22T02:00",  # week 8 (Feb 16..22)
        "2026-02-15T02:00",  # week 7
        "2026-02-08T02:00",  # week 6
        "2026-01-31T02:00",  # month 01 (only three months have backups)
    ]
    assert set(_ids(plan.delete)) == {b.id for b in _daily_series()} - set(_ids(plan.keep))
    assert plan.reasons["2026-03-01T14:00"] == (
        "newest",
        "daily 2026-03-01",
        "weekly 2026-W09",
        "monthly 2026-03",
    )
    assert plan.reasons["2026-02-22T02:00"] == ("weekly 2026-W08",)


def test_delete_is_newest_first() -> None:
    plan = plan_prune(_daily_series(), now=NOW, keep_last=1)
    times = [b.created_at for b in plan.delete]
    assert times == sorted(times, reverse=True)


def _chains() -> list[BackupInfo]:
    return [
        _b("2026-01-01T02:00", name="F1"),
        _b("2026-01-02T02:00", name="I1", parent="F1"),
        _b("2026-01-03T02:00", name="I2", parent="I1"),
        _b("2026-01-05T02:00", name="F2"),
        _b("2026-01-06T02:00", name="I3", parent="F2"),
    ]


def test_a_kept_incremental_keeps_its_whole_chain() -> None:
    now = datetime(2026, 1, 7, tzinfo=UTC)
    plan = plan_prune(_chains(), now=now, keep_last=1)
    assert _ids(plan.keep) == ["I3", "F2"]
    assert _ids(plan.delete) == ["I2", "I1", "F1"]  # children before their parents
    assert plan.reasons["F2"] == ("parent of I3",)
    # I2, the newest of ISO week 1, kept by a rule keeps I1 and F1, which no rule picks.
    plan = plan_prune(_chains(), now=now, keep_last=1, keep_weekly=2)
    week = {b.id: b.created_at.isocalendar()[1] for b in _chains()}
    assert week == {"F1": 1, "I1": 1, "I2": 1, "F2": 2, "I3": 2}
    assert _ids(plan.keep) == ["I3", "F2", "I2", "I1", "F1"]
    assert plan.reasons["I1"] == ("parent of I2",)
    assert plan.delete == ()


def test_incomplete_backups() -> None:
    backups = [
        _b("2026-01-01T02:00"),
        _b("2026-01-02T02:00", status=BackupStatus.CORRUPT),
        _b("2026-01-03T02:00", status=BackupStatus.INCOMPLETE),
        _b("2026-01-04T02:00"),
        _b("2026-01-04T20:00", status=BackupStatus.INCOMPLETE),  # within the grace
        _b("2026-01-05T02:00"),
        _b("2026-01-05T03:00", status=BackupStatus.INCOMPLETE),  # newer than any complete
    ]
    plan = plan_prune(backups, now=datetime(2026, 1, 5, 4, tzinfo=UTC), keep_last=1)
    assert _ids(plan.keep) == ["2026-01-05T03:00", "2026-01-05T02:00", "2026-01-04T20:00"]
    assert _ids(plan.delete) == [
        "2026-01-04T02:00",
        "2026-01-03T02:00",
        "2026-01-02T02:00",
        "2026-01-01T02:00",
    ]
    # Past the grace, the one older than the newest complete backup goes.
    later = plan_prune(backups, now=datetime(2026, 1, 6, 4, tzinfo=UTC), keep_last=1)
    assert _ids(later.keep) == ["2026-01-05T03:00", "2026-01-05T02:00"]


def test_the_newest_complete_backup_is_never_deleted() -> None:
    backups = [_b("2026-01-01T02:00"), _b("2026-01-09T02:00", status=BackupStatus.INCOMPLETE)]
    plan = plan_prune(backups, now=datetime(2026, 2, 1, tzinfo=UTC), keep_monthly=1)
    # keep_monthly looks at complete backups: January's newest is the only complete one.
    assert _ids(plan.keep) == ["2026-01-09T02:00", "2026-01-01T02:00"]
    only_incomplete = plan_prune(backups[1:], now=datetime(2026, 2, 1, tzinfo=UTC), keep_last=1)
    assert _ids(only_incomplete.keep) == ["2026-01-09T02:00"]  # nothing complete to compare to


def test_days_follow_the_given_time_zone() -> None:
    # One UTC day; in Tokyo (UTC+9) 23:00 on Jan 1 and 01:00 on Jan 2: two days.
    backups = [_b("2026-01-01T14:00"), _b("2026-01-01T16:00")]
    utc = plan_prune(backups, now=NOW, keep_daily=2)
    assert _ids(utc.keep) == ["2026-01-01T16:00"]
    tokyo = plan_prune(backups, now=NOW, keep_daily=2, tz=ZoneInfo("Asia/Tokyo"))
    assert _ids(tokyo.keep) == ["2026-01-01T16:00", "2026-01-01T14:00"]


@pytest.mark.parametrize(
    "rules",
    [{}, {"keep_last": 0}, {"keep_last": -1}, {"keep_daily": -2, "keep_last": 1}],
)
def test_bad_rules(rules: dict[str, int]) -> None:
    with pytest.raises(InvalidInput):
        plan_prune(_daily_series(), now=NOW, **rules)
