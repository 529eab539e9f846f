"""Security adapters from settings: key stores, the throttle, the audit log, data keys."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from membank_server.config import Settings
from membank_server.domain.ports import AuditLog, KeyStore, Throttle

if TYPE_CHECKING:
    from membank_server.security.crypto import KeyRing

__all__ = [
    "add_data_key",
    "build_audit_log",
    "build_key_ring",
    "build_key_store",
    "build_throttle",
    "retire_data_keys",
    "security_dir",
]


def build_key_store(settings: Settings) -> KeyStore:
    sec = settings.security
    if sec.keys_backend == "postgres":
        from membank_server.security.keys_pg import PgKeyStore

        dsn = sec.keys_dsn or settings.storage.postgres.dsn
        assert dsn is not None  # checked by load_settings
        return PgKeyStore(dsn, schema=settings.storage.postgres.schema)
    from membank_server.security.keys_sqlite import SqliteKeyStore

    return SqliteKeyStore(security_dir(settings) / "keys.db")


def build_throttle(settings: Settings) -> Throttle:
    from membank_server.security.throttle import LocalThrottle, LockoutPolicy, RedisThrottle

    lo = settings.security.lockout
    policy = LockoutPolicy(
        lo.max_failures, lo.window_seconds, lo.base_seconds, lo.max_seconds, lo.reset_seconds
    )
    url = settings.security.redis_url or settings.cache.redis_url
    if url:
        rate = settings.security.rate_limit
        return RedisThrottle(
            url, policy, timeout=settings.cache.redis_timeout,
            lease_fraction=rate.lease_fraction, lease_seconds=rate.lease_seconds,
        )  # fmt: skip
    return LocalThrottle(policy)


def security_dir(settings: Settings) -> Path:
    """Where the key database and the audit file live (the data folder by default)."""
    return Path(settings.security.dir or settings.storage.edge.path)


def build_audit_log(settings: Settings) -> AuditLog:
    a = settings.security.audit
    if a.sink == "postgres":
        from membank_server.security.audit_pg import PgAuditLog

        dsn = a.dsn or settings.storage.postgres.dsn
        assert dsn is not None  # checked by load_settings
        return PgAuditLog(dsn, schema=a.schema)
    from membank_server.security.audit_file import FileAuditLog

    return FileAuditLog(Path(a.path) if a.path else security_dir(settings) / "audit.log")


def build_key_ring(settings: Settings) -> KeyRing | None:
    """The data-key ring when field encryption is on."""
    enc = settings.security.encryption
    if not enc.enabled:
        return None
    from membank_server.security.crypto import KeyRing

    if enc.keys_file:
        return KeyRing.from_file(Path(enc.keys_file))
    assert enc.active is not None and enc.index_key is not None  # checked by load_settings
    return KeyRing.from_settings(keys=enc.keys, active=enc.active, index_key=enc.index_key)


def add_data_key(path: Path) -> str:
    """Add a new active data key to a keys file (made 0600 if missing); its id."""
    from membank_server.security.crypto import add_key_to_file

    return add_key_to_file(path)


def retire_data_keys(path: Path, keep: set[str]) -> list[str]:
    """Remove the keys file's keys not in ``keep`` (never the active one); their ids."""
    from membank_server.security.crypto import retire_keys_in_file

    return retire_keys_in_file(path, keep)
