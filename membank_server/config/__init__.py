"""Settings: defaults, then an optional TOML file, then ``MEMBANK_*`` environment variables.

Read once at start (:func:`load_settings`) and passed down; nothing else reads the
environment. Nested keys use a double underscore: ``MEMBANK_SERVER__PORT=9000``,
``MEMBANK_STORAGE__BACKEND=qdrant``, ``MEMBANK_STORAGE__QDRANT__URL=...``.
``MEMBANK_CONFIG`` names the TOML file when ``--config`` is not given.
A bad setting fails at start with one line naming it.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from membank_server.config._backup import BackupS3Settings, BackupSettings, check_backup
from membank_server.config._base import URL_SECRET, MiB, Section, is_secret, masked_tree
from membank_server.config._jobs import (
    BatcherSettings,
    JobsSettings,
    LlmSettings,
    check_jobs,
    job_backend,
)
from membank_server.config._observe import ObserveSettings, SloSettings, check_observe
from membank_server.config._process import (
    CacheSettings,
    EmbedderSettings,
    LimitSettings,
    ServerSettings,
    check_process,
)
from membank_server.config._search import SearchSettings, check_search
from membank_server.config._security import (
    AuditSettings,
    EncryptionSettings,
    LockoutSettings,
    RateLimitSettings,
    SecuritySettings,
    check_security,
)
from membank_server.config._storage import (
    EdgeSettings,
    HybridSettings,
    PostgresSettings,
    QdrantSettings,
    StorageSettings,
    check_storage,
)
from membank_server.domain.errors import ConfigError
from membank_server.domain.storage import StoreKind

__all__ = [
    "AuditSettings",
    "BackupS3Settings",
    "BackupSettings",
    "BatcherSettings",
    "CacheSettings",
    "EdgeSettings",
    "EmbedderSettings",
    "EncryptionSettings",
    "HybridSettings",
    "JobsSettings",
    "LimitSettings",
    "LlmSettings",
    "LockoutSettings",
    "MiB",
    "ObserveSettings",
    "PostgresSettings",
    "QdrantSettings",
    "RateLimitSettings",
    "SearchSettings",
    "SecuritySettings",
    "ServerSettings",
    "Settings",
    "SloSettings",
    "StorageSettings",
    "job_backend",
    "load_settings",
    "masked",
    "masked_tree",
    "secret_values",
]

_PREFIX = "MEMBANK_"
#: MEMBANK_ variables that are not settings: the config file, and the CLI's API key.
_NOT_SETTINGS = ("MEMBANK_CONFIG", "MEMBANK_API_KEY")
#: What Kubernetes injects for a Service named ``membank`` or ``membank-<x>``
#: (``MEMBANK_SERVICE_HOST``, ``MEMBANK_PORT=tcp://...``, ``MEMBANK_PORT_8080_TCP_ADDR``,
#: ``MEMBANK_REDIS_SERVICE_PORT_HTTP``...). Settings always have a double underscore
#: (``MEMBANK_SERVER__PORT``), so these are never settings and never typos of one.
_SERVICE_LINK = re.compile(
    r"MEMBANK_(?:[A-Z0-9]+(?:_[A-Z0-9]+)*_)?"
    r"(?:SERVICE_HOST|SERVICE_PORT(?:_[A-Z0-9_]+)?"
    r"|PORT(?:_[0-9]+_(?:TCP|UDP|SCTP)(?:_(?:PROTO|PORT|ADDR))?)?)"
)
#: Settings that were renamed, by table: old name -> new name. The old name still
#: works; giving both is an error.
_RENAMED = {
    ("storage", "edge"): {"hnsw_ef_construct": "hnsw_ef_construction", "hnsw_ef": "hnsw_ef_search"},
    ("storage", "qdrant"): {
        "hnsw_ef_construct": "hnsw_ef_construction",
        "hnsw_ef": "hnsw_ef_search",
    },
}
_ENUM_ERROR = re.compile(r"Invalid enum value (?P<value>.+) - at `\$\.(?P<path>[\w.]+)`")


class Settings(Section):
    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    storage: StorageSettings = msgspec.field(default_factory=StorageSettings)
    embedder: EmbedderSettings = msgspec.field(default_factory=EmbedderSettings)
    limits: LimitSettings = msgspec.field(default_factory=LimitSettings)
    cache: CacheSettings = msgspec.field(default_factory=CacheSettings)
    security: SecuritySettings = msgspec.field(default_factory=SecuritySettings)
    observe: ObserveSettings = msgspec.field(default_factory=ObserveSettings)
    backup: BackupSettings = msgspec.field(default_factory=BackupSettings)
    jobs: JobsSettings = msgspec.field(default_factory=JobsSettings)
    llm: LlmSettings = msgspec.field(default_factory=LlmSettings)
    search: SearchSettings = msgspec.field(default_factory=SearchSettings)


def _merge(into: dict[str, Any], new: Mapping[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(_PREFIX) or name in _NOT_SETTINGS:
            continue
        if "__" not in name and _SERVICE_LINK.fullmatch(name):
            continue
        path = name[len(_PREFIX) :].lower().split("__")
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{name}: conflicts with another MEMBANK_ variable")
        node[path[-1]] = _env_value(name, value)
    return tree


def _env_value(name: str, value: str) -> Any:
    """An empty value means "unset" (so None-able settings can be cleared); JSON sets a
    list or dict: ``MEMBANK_SECURITY__TRUSTED_PROXIES='["10.0.0.0/8"]'``."""
    if value == "":
        return None
    if value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{name}: not valid JSON: {exc}") from exc
    return value


def _renamed(data: dict[str, Any]) -> None:
    for table_path, names in _RENAMED.items():
        table: Any = data
        for part in table_path:
            table = table.get(part) if isinstance(table, dict) else None
        if not isinstance(table, dict):
            continue
        for old, new in names.items():
            if old not in table:
                continue
            where = ".".join(table_path)
            if new in table:
                raise ConfigError(
                    f"setting {where}.{old} is the old name of {where}.{new}: give only one"
                )
            table[new] = table.pop(old)


def _explained(error: str) -> str:
    """msgspec's message as one line naming the setting (and the choices, for a choice)."""
    found = _ENUM_ERROR.search(error)
    if found is not None:
        path = found["path"]
        kind: Any = msgspec.inspect.type_info(Settings)
        for part in path.split("."):
            kind = next(f.type for f in kind.fields if f.name == part)
        # An enum, or a Literal (storage.distance, storage.edge.quantization).
        values = kind.values if isinstance(kind, msgspec.inspect.LiteralType) else kind.cls
        allowed = ", ".join(str(getattr(v, "value", v)) for v in values)
        return f"setting {path} must be one of {allowed}, not {found['value']}"
    where = error.replace("$.", "setting ").replace("`", "")
    return f"bad setting: {where}"


def load_settings(
    config_file: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Build the effective settings.

    Args:
        config_file: A TOML file; defaults to ``$MEMBANK_CONFIG`` when set.
        environ: The environment to read (``os.environ`` by default).

    Raises:
        ConfigError: one line naming the bad setting.
    """
    env = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    path = config_file or env.get(f"{_PREFIX}CONFIG")
    if path:
        try:
            with open(path, "rb") as fh:
                _merge(data, tomllib.load(fh))
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {path} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    _merge(data, _from_env(env))
    _renamed(data)
    try:
        settings = msgspec.convert(data, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(_explained(str(exc))) from exc
    check_process(settings.server, settings.limits, settings.cache, settings.embedder)
    check_storage(settings.storage, settings.server)
    check_security(settings)
    check_search(settings.search)
    check_observe(settings.observe, settings.storage.postgres.dsn)
    check_backup(settings.backup)
    check_jobs(settings.jobs, settings.llm)
    jobs = job_backend(
        settings.jobs,
        settings.cache.l3_url,
        settings.storage.postgres.dsn,
        StoreKind.PGVECTOR in settings.storage.kinds,
        settings.server.workers,
    )
    if jobs == "local" and settings.server.replicas > 1:
        raise ConfigError(
            "setting jobs.backend resolves to local, a file in one instance's data folder: "
            f"with server.replicas={settings.server.replicas} set jobs.backend to redis or "
            "postgres"
        )
    return settings


def masked(settings: Settings) -> dict[str, Any]:
    """The settings as a plain tree with every secret replaced by ``***``."""
    return masked_tree(settings)


def secret_values(settings: Settings) -> list[str]:
    """Every secret the settings hold (the values ``masked`` hides, URL passwords and
    the data keys), for the log redactor to remove wherever they might appear."""
    found: list[str] = []

    def walk(node: Any, secret: bool) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, secret or is_secret(k))
        elif isinstance(node, list):
            for v in node:
                walk(v, secret)
        elif isinstance(node, str):
            if secret:
                found.append(node)
            found.extend(m.group(2) for m in URL_SECRET.finditer(node))

    walk(msgspec.to_builtins(settings), False)
    keys_file = settings.security.encryption.keys_file
    if keys_file:
        try:
            ring = json.loads(Path(keys_file).read_text())
        except (OSError, ValueError):
            ring = None  # the key ring reports a bad file itself, at start
        if isinstance(ring, dict):
            walk({"keys": ring.get("keys"), "index_key": ring.get("index_key")}, True)
    return found
