"""Crontab lines as the schedules (cache warmup, backups) take them."""

from __future__ import annotations

__all__ = ["cron_fields"]

_NAMES = ("minute", "hour", "day", "month", "day_of_week")


def cron_fields(spec: str) -> dict[str, str]:
    """The fields of a crontab line by name (APScheduler's ``CronTrigger`` keywords);
    six fields put seconds first (``*/30 * * * * *``).

    Raises:
        ValueError: not 5 or 6 fields.
    """
    fields = spec.split()
    if len(fields) == 6:
        return {"second": fields[0], **dict(zip(_NAMES, fields[1:], strict=True))}
    if len(fields) == 5:
        return dict(zip(_NAMES, fields, strict=True))
    raise ValueError("5 fields, or 6 with seconds first")
