"""Security settings: API keys, lockout, rate limits, audit, field encryption."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Literal

import msgspec

from membank_server.config._base import Section, masked_tree
from membank_server.config._process import check_positive
from membank_server.domain.errors import ConfigError

if TYPE_CHECKING:
    from membank_server.config import Settings

__all__ = [
    "AuditSettings",
    "EncryptionSettings",
    "LockoutSettings",
    "RateLimitSettings",
    "SecuritySettings",
    "check_security",
]


class RateLimitSettings(Section):
    """Per API key: a sustained rate with a burst (a key may override both)."""

    enabled: bool = True
    requests_per_second: float = 200.0
    burst: int = 400
    #: With a shared Redis, an instance takes up to this share of a key's burst at once
    #: and spends it without a round trip; 0 asks Redis on every request (exact). The
    #: error bound (``security.redis_rates``), for N instances and lease = burst * this:
    #: at most N * (lease - 1) more than the limit per window, and at most that many
    #: fewer per ``lease_seconds``.
    lease_fraction: float = 0.05
    #: A lease's leftover is dropped at this age.
    lease_seconds: float = 1.0


class LockoutSettings(Section):
    """Failed authentication from one client, or against one key, locks it for a while.

    ``max_failures`` within ``window_seconds`` starts a lockout of ``base_seconds``
    that doubles with each further lockout up to ``max_seconds``; the doubling is
    forgotten after ``reset_seconds`` without failures.
    """

    enabled: bool = True
    max_failures: int = 10
    window_seconds: float = 60.0
    base_seconds: float = 30.0
    max_seconds: float = 900.0
    reset_seconds: float = 3600.0


class AuditSettings(Section):
    """Where the append-only audit log goes: a JSON-lines file or a PostgreSQL table."""

    sink: Literal["file", "postgres"] = "file"
    #: The file sink's path; defaults to ``<security dir>/audit.log``.
    path: str | None = None
    #: The postgres sink's DSN; defaults to ``storage.postgres.dsn``.
    dsn: str | None = None
    schema: str = "membank"


class EncryptionSettings(Section):
    """Field-level AES-256-GCM of ``content`` and chosen metadata keys (vectors stay clear).

    Keys are base64 of 32 random bytes, by id: ``keys = {k1 = "..."}`` with
    ``active = "k1"``, or a JSON ``keys_file`` holding ``active``, ``keys`` and
    ``index_key``. ``index_key`` keys the hash used to find exact duplicates.
    """

    enabled: bool = False
    keys: dict[str, str] = msgspec.field(default_factory=dict)
    active: str | None = None

    def __repr__(self) -> str:
        return f"EncryptionSettings({masked_tree(self)})"

    index_key: str | None = None
    keys_file: str | None = None
    metadata_keys: list[str] = msgspec.field(default_factory=list)


class SecuritySettings(Section):
    """API keys bound to tenants, lockout, rate limits, audit and field encryption."""

    def __repr__(self) -> str:
        return f"SecuritySettings({masked_tree(self)})"

    auth: bool = True
    #: An admin key to accept (created on first start when absent); when unset, the
    #: first start creates one and prints it once.
    admin_key: str | None = None
    #: Folder for the key database and the audit file; defaults to storage.edge.path.
    dir: str | None = None
    keys_backend: Literal["sqlite", "postgres"] = "sqlite"
    #: The postgres key store's DSN; defaults to ``storage.postgres.dsn``.
    keys_dsn: str | None = None
    #: How long a verified key is trusted before it is looked up again (revocation delay
    #: on other instances; the instance that revokes forgets at once).
    key_cache_seconds: float = 2.0
    #: Shared lockout and rate-limit state; defaults to ``cache.redis_url``.
    redis_url: str | None = None
    #: Proxies (IPs or CIDRs) whose X-Forwarded-For is believed.
    trusted_proxies: list[str] = msgspec.field(default_factory=list)
    cors_origins: list[str] = msgspec.field(default_factory=list)
    #: Requests one key may have in flight on one instance (429 beyond), and how many
    #: of them may be batch writes: one key's bulk import cannot take every worker.
    max_concurrent_per_key: int = 32
    max_concurrent_batches_per_key: int = 2
    #: /metrics without a key. Off by default: it needs an admin key, or scrape the
    #: unauthenticated listener at ``server.metrics_address`` on a private network.
    metrics_public: bool = False
    rate_limit: RateLimitSettings = msgspec.field(default_factory=RateLimitSettings)
    lockout: LockoutSettings = msgspec.field(default_factory=LockoutSettings)
    audit: AuditSettings = msgspec.field(default_factory=AuditSettings)
    encryption: EncryptionSettings = msgspec.field(default_factory=EncryptionSettings)


def check_security(settings: Settings) -> None:
    sec = settings.security
    positive = {
        "security.rate_limit.requests_per_second": sec.rate_limit.requests_per_second,
        "security.rate_limit.burst": sec.rate_limit.burst,
        "security.lockout.max_failures": sec.lockout.max_failures,
        "security.lockout.window_seconds": sec.lockout.window_seconds,
        "security.lockout.base_seconds": sec.lockout.base_seconds,
        "security.lockout.max_seconds": sec.lockout.max_seconds,
        "security.max_concurrent_per_key": sec.max_concurrent_per_key,
        "security.max_concurrent_batches_per_key": sec.max_concurrent_batches_per_key,
        "security.rate_limit.lease_seconds": sec.rate_limit.lease_seconds,
    }
    check_positive(positive)
    if not 0 <= sec.rate_limit.lease_fraction <= 0.5:
        raise ConfigError("setting security.rate_limit.lease_fraction must be between 0 and 0.5")
    if sec.admin_key is not None and len(sec.admin_key) < 32:
        raise ConfigError("setting security.admin_key must be at least 32 characters")
    if not sec.auth and not _loopback(settings.server.host):
        raise ConfigError(
            "setting security.auth=false serves every request as an admin: only with "
            f"server.host on loopback (127.0.0.1), not {settings.server.host!r}"
        )
    pg_dsn = settings.storage.postgres.dsn
    if sec.keys_backend == "postgres" and not (sec.keys_dsn or pg_dsn):
        raise ConfigError(
            "security.keys_backend=postgres needs security.keys_dsn or storage.postgres.dsn"
        )
    if sec.audit.sink == "postgres" and not (sec.audit.dsn or pg_dsn):
        raise ConfigError(
            "security.audit.sink=postgres needs security.audit.dsn or storage.postgres.dsn"
        )
    replicas = settings.server.replicas
    if replicas > 1 and sec.keys_backend == "sqlite":
        raise ConfigError(
            "setting security.keys_backend=sqlite keeps API keys in one instance's folder: "
            f"with server.replicas={replicas} set security.keys_backend=postgres"
        )
    if replicas > 1 and sec.audit.sink == "file":
        raise ConfigError(
            "setting security.audit.sink=file writes one instance's audit log: "
            f"with server.replicas={replicas} set security.audit.sink=postgres"
        )
    for cidr in sec.trusted_proxies:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError as exc:
            raise ConfigError(
                f"setting security.trusted_proxies: {cidr!r} is not an IP address or CIDR"
            ) from exc
    enc = sec.encryption
    if enc.enabled and not enc.keys_file and not (enc.keys and enc.active and enc.index_key):
        raise ConfigError(
            "security.encryption.enabled needs security.encryption.keys_file, or "
            "security.encryption.keys with .active and .index_key "
            "(make them with: membank keys generate-data-key)"
        )
    if enc.active is not None and enc.keys and enc.active not in enc.keys:
        raise ConfigError(
            f"setting security.encryption.active names {enc.active!r}, which is not in "
            "security.encryption.keys"
        )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
