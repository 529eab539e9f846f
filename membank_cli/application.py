"""The CLI's application object: settings, what commands open, how they stop, their output.

The root callback puts one :class:`Application` in Typer's context; every command
takes it from there (``Application.of(ctx)``) and keeps only its verb. This is the
one CLI module that imports :mod:`membank_server.bootstrap` (an import-linter
contract says so): what a command opens from the settings (a store, the key store,
the audit log) is built, started and closed here. Whatever escapes a command
reaches :meth:`Output.abort` through the root group (``membank_cli.app``), so helpers
raise :class:`MembankError` rather than print and exit.

    app = Application.of(ctx)

    async def work() -> int:
        store = await app.store()
        return await store.count()

    app.success(f"{app.run(work)} memories")
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

import typer

from membank_cli.output import Output
from membank_server import bootstrap
from membank_server.config import Settings, load_settings
from membank_server.domain.backup_ports import SealedFields
from membank_server.domain.errors import ConfigError, MembankError, StorageUnavailable
from membank_server.domain.ports import AuditLog, Embedder, KeyStore, MemoryStore
from membank_server.domain.storage import StoreKind
from membank_server.services.backup import BackupService
from membank_server.services.memories import MemoryService

__all__ = ["Application", "ConfigOption"]

_T = TypeVar("_T")


class _Startable(Protocol):
    async def start(self) -> None: ...

    async def aclose(self) -> None: ...


_S = TypeVar("_S", bound=_Startable)


def _use_config(ctx: typer.Context, value: Path | None) -> None:
    if value is not None:
        Application.of(ctx).config_file = value


#: ``--config`` on the root (``membank -c FILE collection info``) or on a command
#: (``membank collection info -c FILE``); either way it feeds the Application, and
#: the parameter a command declares for it stays None (``app.config_file`` has it).
ConfigOption: Any = typer.Option(
    None,
    "--config",
    "-c",
    help="TOML settings file.",
    callback=_use_config,
    expose_value=False,
)


class Application(Output):
    """Settings read once, ``run`` for async work, ``abort`` and the output wrapper."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        """``environ``: the variables settings are read from (this process's by default)."""
        super().__init__()
        self.config_file: Path | None = None
        self._environ = environ
        self._overrides: dict[str, str] = {}
        self._settings: Settings | None = None
        self._stack: AsyncExitStack | None = None

    @classmethod
    def of(cls, ctx: typer.Context) -> Application:
        """The application of this command line (made on first use)."""
        return ctx.ensure_object(cls)

    # Settings ------------------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        """Defaults < TOML file (``--config`` or ``MEMBANK_CONFIG``) < ``MEMBANK_*`` env.

        Read on first use, once; a bad setting aborts with one line (exit 2).
        """
        if self._settings is None:
            try:
                environ = os.environ if self._environ is None else self._environ
                self._settings = load_settings(
                    self.config_file, environ={**environ, **self._overrides}
                )
            except MembankError as exc:
                self.abort(exc)
        return self._settings

    def override(self, environ: Mapping[str, str]) -> None:
        """Read the settings as if these ``MEMBANK_*`` variables were set too."""
        if self._settings is not None:
            raise RuntimeError("override() comes before the settings are first read")
        self._overrides.update(environ)

    # Running -------------------------------------------------------------------------

    def run(self, work: Callable[[], Awaitable[_T]]) -> _T:
        """Run ``work`` in its own event loop and return its result.

        What ``work`` opens through this object (a store, the key store, the audit
        log) is closed when it ends, last opened first, however it ends. A
        :class:`MembankError` stops the command with one line (see :meth:`abort`).
        """

        async def main() -> _T:
            async with AsyncExitStack() as stack:
                self._stack = stack
                try:
                    return await work()
                finally:
                    self._stack = None

        try:
            return asyncio.run(main())
        except MembankError as exc:
            self.abort(exc)

    @property
    def _exits(self) -> AsyncExitStack:
        if self._stack is None:
            raise RuntimeError("only inside Application.run()")
        return self._stack

    async def started(self, resource: _S) -> _S:
        """Start ``resource`` now; it is closed when ``run`` ends."""
        exits = self._exits
        await resource.start()
        exits.push_async_callback(resource.aclose)
        return resource

    # What commands open --------------------------------------------------------------

    async def store(self) -> MemoryStore:
        """The configured store, started, its data folder locked first as the server does.

        A folder a running server owns is refused (``StorageUnavailable``, exit 3).
        """
        lock = bootstrap.build_folder_lock(self.settings)
        if lock is not None:
            lock.acquire()
            self._exits.callback(lock.release)
        return await self.started(bootstrap.build_store(self.settings))

    async def single_store(self, kind: str) -> MemoryStore:
        """One of the configured stores by kind (``edge``, ``qdrant``, ``pgvector``), started."""
        return await self.started(bootstrap.build_single_store(self.settings, kind))

    def sealing(self, store: MemoryStore) -> SealedFields | None:
        """Field encryption's view of ``store`` (None when encryption is off)."""
        return bootstrap.build_sealing(self.settings, store)

    def embedder(self) -> Embedder:
        """The configured embedder, not started (``started()`` loads it when needed)."""
        return bootstrap.build_embedder(self.settings)

    def memory_service(self, store: MemoryStore, embedder: Embedder) -> MemoryService:
        """The memory use cases over this store and embedder, with the settings' limits and
        search (mode defaults, lexical analysis, reranker) and no cache: evaluations."""
        reranker = bootstrap.build_reranker(self.settings)
        if reranker is not None:
            self._exits.push_async_callback(reranker.aclose)
        return MemoryService(
            store,
            embedder,
            bootstrap.limits_of(self.settings),
            search=bootstrap.build_search(self.settings, store, reranker),
        )

    async def key_store(self) -> KeyStore:
        """The API-key and team store, started."""
        return await self.started(bootstrap.build_key_store(self.settings))

    async def audit_log(self, *, append: bool = False) -> AuditLog:
        """The audit log; started (its file or table made) only to ``append``."""
        log = bootstrap.build_audit_log(self.settings)
        if append:
            return await self.started(log)
        self._exits.push_async_callback(log.aclose)
        return log

    # Backups -------------------------------------------------------------------------

    def data_folder_in_use(self) -> bool:
        """Whether another process (a running server) owns the embedded data folder."""
        lock = bootstrap.build_folder_lock(self.settings)
        if lock is None:
            return False
        try:
            lock.acquire()
        except StorageUnavailable:
            return True
        lock.release()
        return False

    async def store_of(self, kind: str | None) -> MemoryStore:
        """A store to restore into: the configured one, or the single store ``kind``
        (its settings as configured), an embedded one's data folder locked first."""
        if kind is None:
            return await self.store()
        try:
            chosen = StoreKind(kind)
        except ValueError:
            raise ConfigError(f"no store of kind {kind!r}: edge, qdrant or pgvector") from None
        lock = bootstrap.build_folder_lock(self.settings, {chosen})
        if lock is not None:
            lock.acquire()
            self._exits.callback(lock.release)
        return await self.single_store(kind)

    async def backups(
        self, store: MemoryStore | None = None, *, extras: Literal["read", "write"] | None = None
    ) -> BackupService:
        """The backup service of the settings over ``store`` (None: only to list, check
        and prune backups). ``extras`` opens what a backup holds besides memories (the
        key store, the audit log, Redis's counts; field encryption's keys): to ``read``
        them for a backup, or to ``write`` them in a restore."""
        s = self.settings
        keys = audit = counts = sealed = None
        if extras is not None:
            if s.security.auth:
                keys = await self.key_store()
            audit = await self.audit_log(append=extras == "write")
            built = bootstrap.build_durable_counts(s)
            if built is not None:
                counts, cache = built
                self._exits.push_async_callback(cache.aclose)
            if store is not None:
                sealed = bootstrap.build_sealing(s, store)
        return bootstrap.build_backup_service(
            s,
            store,
            embedder=self.embedder().model,
            dimension=bootstrap.embedding_dimension(s),
            keys=keys,
            audit=audit,
            counts=counts,
            sealed=sealed,
        )

    def lock_data_folder(self) -> None:
        """Take the data folder for this process until it exits (``membank serve``)."""
        lock = bootstrap.build_folder_lock(self.settings)
        if lock is not None:
            try:
                lock.acquire()
            except MembankError as exc:
                self.abort(exc)

    def add_data_key(self, path: Path) -> str:
        """Add a new active field-encryption key to a keys file; its id."""
        return bootstrap.add_data_key(path)

    def retire_data_keys(self, path: Path, keep: set[str]) -> list[str]:
        """Remove the keys file's keys not in ``keep`` (never the active one); their ids."""
        return bootstrap.retire_data_keys(path, keep)
