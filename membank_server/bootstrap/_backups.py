"""Backups from settings: the archive of a target with its keys, the service, the schedule."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from membank_server.config import Settings
from membank_server.domain.backup_ports import BackupSource
from membank_server.domain.ports import (
    AuditLog,
    BackupArchive,
    DatabaseDump,
    DurableCounts,
    KeyStore,
    MemoryStore,
    SealedFields,
    Snapshots,
)
from membank_server.domain.storage import StoreKind
from membank_server.domain.telemetry import Telemetry
from membank_server.services._backup_extras import BackupExtras
from membank_server.services.backup import BackupService, Retention
from membank_server.services.backup_schedule import BackupScheduler, SchedulePlan
from membank_server.services.warmup import LockFactory, local_lock

if TYPE_CHECKING:
    from membank_server.archive.crypto import PartCipher

__all__ = [
    "build_backup_archive",
    "build_backup_scheduler",
    "build_backup_service",
    "retention_of",
    "scratch_store",
    "snapshot_store",
]


def _cipher(settings: Settings) -> PartCipher | None:
    b = settings.backup
    if b.key or b.key_file:
        from membank_server.archive.crypto import AesGcmCipher, load_backup_key

        key = load_backup_key(b.key, b.key_file)
        assert key is not None
        return AesGcmCipher(key)
    if b.sealing != "age":
        return None
    from membank_server.archive.age import AgeCipher
    from membank_server.archive.crypto import read_private_file

    identities: list[str] = []
    if b.age_identities_file:
        path = Path(b.age_identities_file).expanduser()
        text = read_private_file(path, f"age identities file {path}", limit=1 << 20)
        identities = [
            line.strip() for line in text.splitlines() if line.strip().startswith("AGE-SECRET-KEY-")
        ]
    return AgeCipher(
        recipients=b.age_recipients, identities=identities, passphrase=b.age_passphrase
    )


def build_backup_archive(settings: Settings, target: str | None = None) -> BackupArchive:
    """The backups at ``target`` (``backup.target`` by default), with the configured keys.

    Raises:
        ConfigError: a target URL that names no known kind of target.
        BackupKeyError: a backup key or age key that cannot be read or is malformed.
    """
    from membank_server.archive.repository import ArchiveRepository
    from membank_server.archive.targets import target_from_url

    b, s3 = settings.backup, settings.backup.s3
    where = target_from_url(
        target or b.target,
        endpoint_url=s3.endpoint_url,
        region=s3.region,
        access_key=s3.access_key,
        secret_key=s3.secret_key,
        retries=s3.retries,
        part_size=s3.part_size,
        connect_timeout=s3.connect_timeout,
        read_timeout=s3.read_timeout,
        addressing_style=s3.addressing_style,
    )
    return ArchiveRepository(
        where, _cipher(settings), part_size=b.part_size, zstd_level=b.zstd_level
    )


def snapshot_store(store: MemoryStore) -> Snapshots | None:
    """The store a backup reads one snapshot from: PostgreSQL, alone or a hybrid's primary."""
    from membank_server.storage.hybrid import HybridStore
    from membank_server.storage.routed import RoutedStore

    found: object = store
    if isinstance(found, RoutedStore):
        found = found.hybrid
    if isinstance(found, HybridStore):
        found = found.primary
    return found if isinstance(found, Snapshots) else None


@contextlib.asynccontextmanager
async def scratch_store(dimension: int, distance: str = "cosine") -> AsyncIterator[MemoryStore]:
    """An empty embedded store in a temporary folder, removed afterwards (deep verify)."""
    from membank_server.storage.edge import EdgeStore

    with tempfile.TemporaryDirectory(prefix="membank-verify-") as folder:
        store = EdgeStore(
            Path(folder) / "scratch",
            dimension=dimension,
            distance=distance,
            check_on_start=False,
            history_limit=None,
        )
        await store.start()
        try:
            yield store
        finally:
            await store.aclose()


def _uses_postgres(settings: Settings) -> bool:
    sec = settings.security
    return settings.storage.postgres.dsn is not None and (
        StoreKind.PGVECTOR in settings.storage.kinds
        or sec.keys_backend == "postgres"
        or sec.audit.sink == "postgres"
    )


def _dump(settings: Settings) -> DatabaseDump | None:
    if not (settings.backup.pg_dump and _uses_postgres(settings)):
        return None
    from membank_server.pg import PgDump

    pg, audit = settings.storage.postgres, settings.security.audit
    assert pg.dsn is not None
    schemas = [pg.schema]
    if audit.sink == "postgres" and audit.dsn in (None, pg.dsn):
        schemas.append(audit.schema)
    return PgDump(pg.dsn, schemas, bin_dir=settings.backup.pg_bin)


def build_backup_service(
    settings: Settings,
    store: MemoryStore | None,
    *,
    embedder: str | None,
    dimension: int,
    keys: KeyStore | None = None,
    audit: AuditLog | None = None,
    counts: DurableCounts | None = None,
    sealed: SealedFields | None = None,
    telemetry: Telemetry | None = None,
) -> BackupService:
    """The backup service over ``store`` as it keeps records (below field encryption)."""
    s = settings.storage
    source = BackupSource(
        backend=s.backend.value,
        dimension=dimension,
        embedder=embedder,
        settings={"distance": s.distance},
    )
    dump = _dump(settings)
    extras = BackupExtras(keys=keys, audit=audit, counts=counts, dump=dump, sealed=sealed)

    def archives(target: str | None) -> BackupArchive:
        return build_backup_archive(settings, target)

    def scratch(dim: int) -> contextlib.AbstractAsyncContextManager[MemoryStore]:
        return scratch_store(dim, s.distance)

    return BackupService(
        store,
        archives,
        source,
        extras=extras,
        snapshots=snapshot_store(store) if store is not None else None,
        telemetry=telemetry,
        scratch=scratch,
        target_url=settings.backup.target,
    )


def retention_of(settings: Settings) -> Retention:
    b = settings.backup
    return Retention(b.keep_last, b.keep_daily, b.keep_weekly, b.keep_monthly)


def build_backup_scheduler(
    settings: Settings, service: BackupService, cache_lock: LockFactory | None
) -> BackupScheduler:
    """The schedule (``backup.schedule``), its lock and where a failure is sent."""
    b = settings.backup
    plan = None
    if b.schedule:
        plan = SchedulePlan(b.schedule, b.full_every, retention_of(settings), b.lock_seconds)
    lock = cache_lock
    if lock is None and _uses_postgres(settings):
        from membank_server.pg import advisory_lock

        assert settings.storage.postgres.dsn is not None
        lock = advisory_lock(settings.storage.postgres.dsn)
    alerts = None
    if b.webhook_url:
        from membank_server.observability.webhook import WebhookAlerts

        alerts = WebhookAlerts(b.webhook_url, retries=b.webhook_retries, timeout=b.webhook_timeout)
    return BackupScheduler(service, plan, lock=lock or local_lock(), alerts=alerts)
