"""Backup settings: where backups go, how they are sealed, when they run, what is kept."""

from __future__ import annotations

from typing import Literal

import msgspec

from membank_server.config._base import MiB, Section
from membank_server.config._process import check_positive
from membank_server.domain.cron import cron_fields
from membank_server.domain.errors import ConfigError

__all__ = ["BackupS3Settings", "BackupSettings", "check_backup"]


class BackupS3Settings(Section):
    """How an ``s3://bucket/prefix`` target is reached (boto3's chain when keys are unset)."""

    endpoint_url: str | None = None
    region: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    retries: int = 3
    #: Bytes per multipart part (5 MiB to 5 GiB): the memory one upload uses.
    part_size: int = 8 * MiB
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    addressing_style: Literal["auto", "path", "virtual"] = "auto"


class BackupSettings(Section):
    """``membank backup`` and the server's scheduled backups.

    Encryption follows from the keys given: ``key`` or ``key_file`` (base64 of 32
    bytes; the file mode 0600) seals parts with AES-256-GCM; ``age_recipients`` (and
    ``age_identities_file`` to read back) or ``age_passphrase`` seal them with age.
    """

    #: ``./backups`` (a folder), ``file:///abs/path`` or ``s3://bucket/prefix``.
    target: str = "./backups"
    zstd_level: int = 3
    #: Uncompressed bytes per part, about.
    part_size: int = 64 * MiB
    key: str | None = None
    key_file: str | None = None
    age_recipients: list[str] = msgspec.field(default_factory=list)
    age_identities_file: str | None = None
    age_passphrase: str | None = None
    s3: BackupS3Settings = msgspec.field(default_factory=BackupS3Settings)
    #: Add a native ``pg_dump -Fc`` of membank's schemas when PostgreSQL is used.
    pg_dump: bool = True
    #: The folder of ``pg_dump``/``pg_restore`` (of the server's major version or newer);
    #: None: the PATH.
    pg_bin: str | None = None
    #: A crontab line (six fields put seconds first); None: no scheduled backups.
    schedule: str | None = None
    #: Every Nth scheduled backup is full, the others incremental (1: all full).
    full_every: int = 1
    #: Retention applied after each scheduled success (all 0: nothing is pruned).
    keep_last: int = 3
    keep_daily: int = 7
    keep_weekly: int = 4
    keep_monthly: int = 6
    #: Called (POST, JSON) when a scheduled backup fails; may hold a token: masked.
    webhook_url: str | None = None
    webhook_retries: int = 3
    webhook_timeout: float = 5.0
    #: The longest a scheduled backup holds the lock that makes one instance run it.
    lock_seconds: float = 6 * 3600.0

    def __repr__(self) -> str:
        from membank_server.config._base import masked_tree

        return f"BackupSettings({masked_tree(self)})"

    @property
    def sealing(self) -> Literal["aes", "age"] | None:
        if self.key or self.key_file:
            return "aes"
        if self.age_recipients or self.age_identities_file or self.age_passphrase:
            return "age"
        return None


def check_backup(b: BackupSettings) -> None:
    """The backup rules (each error one line naming the setting)."""
    check_positive(
        {
            "backup.part_size": b.part_size,
            "backup.full_every": b.full_every,
            "backup.webhook_timeout": b.webhook_timeout,
            "backup.lock_seconds": b.lock_seconds,
            "backup.s3.connect_timeout": b.s3.connect_timeout,
            "backup.s3.read_timeout": b.s3.read_timeout,
        }
    )
    if not 1 <= b.zstd_level <= 22:
        raise ConfigError(f"setting backup.zstd_level must be 1 to 22, got {b.zstd_level}")
    if b.part_size < MiB:
        raise ConfigError(f"setting backup.part_size must be at least 1 MiB, got {b.part_size}")
    if not 5 * MiB <= b.s3.part_size <= 5 * 1024 * MiB:
        raise ConfigError(
            f"setting backup.s3.part_size must be 5 MiB to 5 GiB, got {b.s3.part_size}"
        )
    counts = {
        "backup.keep_last": b.keep_last,
        "backup.keep_daily": b.keep_daily,
        "backup.keep_weekly": b.keep_weekly,
        "backup.keep_monthly": b.keep_monthly,
        "backup.webhook_retries": b.webhook_retries,
        "backup.s3.retries": b.s3.retries,
    }
    for name, value in counts.items():
        if value < 0:
            raise ConfigError(f"setting {name} must be 0 or more, got {value}")
    if b.key and b.key_file:
        raise ConfigError("give backup.key or backup.key_file, not both")
    aes = bool(b.key or b.key_file)
    age = bool(b.age_recipients or b.age_identities_file or b.age_passphrase)
    if aes and age:
        raise ConfigError("backup.key/key_file (AES) and backup.age_* (age): choose one")
    if b.age_passphrase and (b.age_recipients or b.age_identities_file):
        raise ConfigError("give backup.age_passphrase or age recipients/identities, not both")
    for recipient in b.age_recipients:
        if not recipient.startswith("age1"):
            raise ConfigError(
                f"setting backup.age_recipients: {recipient!r} is not an age public key (age1...)"
            )
    if b.webhook_url is not None and not b.webhook_url.startswith(("http://", "https://")):
        raise ConfigError("setting backup.webhook_url must be an http:// or https:// URL")
    if b.schedule is not None:
        _check_cron(b.schedule)


def _check_cron(spec: str) -> None:
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger(**cron_fields(spec))
    except ValueError as exc:
        raise ConfigError(
            f"setting backup.schedule must be a crontab line ({exc}), got {spec!r}"
        ) from None
