"""Runtime: the started services of one process, their readiness and upkeep."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from membank_server.domain.errors import EmbedderUnavailable, InsufficientStorage, MembankError
from membank_server.domain.ports import AuditLog, Embedder, FolderLock, MemoryStore, Throttle
from membank_server.domain.security import AuditEntry
from membank_server.services.access import AccessService, AdminChanges
from membank_server.services.memories import MemoryService
from membank_server.services.warmup import CacheWarmer, WarmupReport

if TYPE_CHECKING:
    from membank_server.services.rotation import DataKeyRotation

__all__ = ["KEY_RELOAD_SECONDS", "Runtime", "WarmupPlan"]

#: How often a server re-reads its data-key file (``membank keys rotate-data-key``
#: waits this long after adding a key, so every instance seals with it first).
KEY_RELOAD_SECONDS = 5.0
#: How often a store that a full disk kept closed is tried again.
STORE_RETRY_SECONDS = 5.0

_log = logging.getLogger("membank.runtime")


def _cron(spec: str, trigger: Any) -> Any:
    """A crontab line; six fields put seconds first (``*/30 * * * * *``)."""
    fields = spec.split()
    if len(fields) == 6:
        second, minute, hour, day, month, dow = fields
        return trigger(
            second=second, minute=minute, hour=hour, day=day, month=month, day_of_week=dow
        )
    return trigger.from_crontab(spec)


@dataclass(frozen=True)
class WarmupPlan:
    strategy: str | None = None
    cron: str = "*/15 * * * *"
    top: int = 50
    sample: float = 0.1
    batch_size: int = 32


@dataclass
class Runtime:
    """Everything a server process needs, built by ``bootstrap.build_runtime``.

    ``start()`` first takes the data folder's lock (when the store lives in one), so a
    second process stops before it opens anything; then the audit log, the keys, and
    the store (a failure there stops the process, except a disk too full to open it
    safely: then the server runs without it and opens it once space is freed). The
    embedder loads in the background, so ``/health`` answers at once and ``/ready``
    turns 200 when both are usable. A purge of expired memories runs every
    ``purge_interval`` seconds.
    """

    store: MemoryStore
    embedder: Embedder
    memories: MemoryService
    purge_interval: float = 60.0
    store_ready: bool = False
    embedder_ready: bool = False
    embedder_error: str | None = None
    warmer: CacheWarmer | None = None
    warmup: WarmupPlan = field(default_factory=WarmupPlan)
    warmed: bool = False
    last_warmup: WarmupReport | None = None
    warmup_rounds: int = 0
    #: Keys, teams and the tenant check; None when authentication is off.
    access: AccessService | None = None
    audit: AuditLog | None = None
    throttle: Throttle | None = None
    rotation: DataKeyRotation | None = None
    #: The admin key a first start created, for the server to print once.
    admin_key: str | None = field(default=None, repr=False)
    configured_admin_key: str | None = field(default=None, repr=False)
    folder_lock: FolderLock | None = None
    #: Why the store is not open yet (a full disk), for /ready.
    store_error: str | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _scheduler: Any = None

    @property
    def ready(self) -> bool:
        eager = self.warmer is not None and self.warmup.strategy == "eager"
        return self.store_ready and self.embedder_ready and (self.warmed or not eager)

    async def start(self, *, background: bool = True) -> None:
        if self.folder_lock is not None:
            self.folder_lock.acquire()
        if self.audit is not None:
            await self.audit.start()
        if self.access is not None:
            await self.access.keys.start()
            changes = await self.access.ensure_admin(self.configured_admin_key)
            self.admin_key = changes.created_token
            await self._audit_admin(changes)
            self.memories.idempotency_secret = await self.access.keys.secret("idempotency")
        try:
            await self.store.start()
            self.store_ready = True
        except InsufficientStorage as exc:
            self.store_error = exc.message
            _log.error("store not opened: %s", exc.message)
            if not background:
                raise
            self._tasks.append(asyncio.create_task(self._open_when_space()))
        if background:
            self._tasks.append(asyncio.create_task(self._load_embedder()))
            self._tasks.append(asyncio.create_task(self._upkeep()))
            if self.rotation is not None:
                self._tasks.append(asyncio.create_task(self._follow_keys()))
        else:
            await self._load_embedder()
            if self.embedder_error:
                raise EmbedderUnavailable(self.embedder_error)

    async def _audit_admin(self, changes: AdminChanges) -> None:
        """Record what the configured admin key changed at start (the audit log names
        who: ``config``, the server's own settings)."""
        for action, key_ids in (("key.restore", changes.restored), ("key.revoke", changes.revoked)):
            for key_id in key_ids:
                _log.warning("%s %s: security.admin_key at start", action, key_id)
                if self.audit is not None:
                    await self.audit.append(
                        AuditEntry(
                            at=datetime.now(UTC),
                            request_id="startup",
                            actor="config",
                            client="local",
                            action=action,
                            target=f"key:{key_id}",
                            result="ok",
                            status=200,
                            details={"reason": "security.admin_key"},
                        )
                    )

    async def _open_when_space(self) -> None:
        """Open the store once the disk has room again (every few seconds)."""
        while not self.store_ready:
            await asyncio.sleep(STORE_RETRY_SECONDS)
            try:
                await self.store.start()
            except InsufficientStorage as exc:
                self.store_error = exc.message
                continue
            self.store_ready, self.store_error = True, None
            _log.warning("store opened: disk space was freed")

    def writes(self) -> str | None:
        """Why writes are refused right now (a nearly full disk), or None."""
        state = getattr(self.store, "disk_state", None)
        if state is None or not self.store_ready:
            return None
        disk = state()
        if disk.writable:
            return None
        return f"refused: {disk.free // 2**20} MiB free, {disk.reserve // 2**20} MiB reserve"

    async def _load_embedder(self) -> None:
        try:
            await self.embedder.start()
        except MembankError as exc:
            self.embedder_error = exc.message
            _log.error("embedder failed to start: %s", exc.message)
            return
        self.embedder_ready = True
        _log.info("embedder ready: %s (%d-d)", self.embedder.model, self.embedder.dimension)
        await self._start_warmup()

    async def warm(self, *, pause: float = 0.0) -> WarmupReport:
        """One warmup round now, with the configured top/sample/batch size."""
        if self.warmer is None:
            return WarmupReport()
        p = self.warmup
        self.last_warmup = await self.warmer.run(
            top=p.top, sample=p.sample, batch_size=p.batch_size, pause=pause
        )
        self.warmup_rounds += 1
        return self.last_warmup

    async def _start_warmup(self) -> None:
        strategy = self.warmup.strategy if self.warmer is not None else None
        try:
            if strategy == "eager":
                await self.warm()
            elif strategy == "lazy":
                self._tasks.append(asyncio.create_task(self._warm_quietly()))
            elif strategy == "scheduled":
                from apscheduler.schedulers.asyncio import AsyncIOScheduler
                from apscheduler.triggers.cron import CronTrigger

                self._scheduler = AsyncIOScheduler()
                self._scheduler.add_job(
                    self._warm_quietly,
                    _cron(self.warmup.cron, CronTrigger),
                    id="membank-warmup",
                    max_instances=1,
                    coalesce=True,
                )
                self._scheduler.start()
        finally:
            self.warmed = True

    async def _warm_quietly(self) -> None:
        try:
            await self.warm(pause=0.05)
        except MembankError as exc:
            _log.warning("cache warmup failed: %s", exc.message)

    async def _upkeep(self) -> None:
        while True:
            try:
                purged = await self.memories.purge_expired()
                if purged:
                    _log.info("purged %d expired memories", purged)
                await self.memories.count()
            except MembankError as exc:
                _log.warning("upkeep failed, will retry: %s", exc.message)
            await asyncio.sleep(self.purge_interval)

    async def _follow_keys(self) -> None:
        """Re-read the data-key ring every ``KEY_RELOAD_SECONDS``: after another instance
        (or ``membank keys``) made a new key active, new writes here use it too."""
        assert self.rotation is not None
        while True:
            await asyncio.sleep(KEY_RELOAD_SECONDS)
            try:
                await asyncio.to_thread(self.rotation.store.reload_keys)
            except MembankError as exc:
                _log.warning("data keys not reloaded, keeping the loaded ones: %s", exc.message)

    def background(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run ``work`` after the request that asked for it; cancelled at shutdown."""

        async def run() -> None:
            try:
                report = await work
                if isinstance(report, WarmupReport):
                    self.last_warmup = report
            except MembankError as exc:
                _log.warning("background work failed: %s", exc.message)

        self._tasks.append(asyncio.create_task(run()))

    async def aclose(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.embedder.aclose()
        if self.memories.recall_cache is not None:
            await self.memories.recall_cache.aclose()
        if self.store_ready:
            await self.store.aclose()
        if self.throttle is not None:
            await self.throttle.aclose()
        if self.access is not None:
            await self.access.keys.aclose()
        if self.audit is not None:
            await self.audit.aclose()
        if self.folder_lock is not None:
            self.folder_lock.release()
