"""Settings: defaults, then an optional TOML file, then ``MEMBANK_*`` environment variables.

Read once at start (:func:`load_settings`) and passed down; nothing else reads the
environment. Nested keys use a double underscore: ``MEMBANK_SERVER__PORT=9000``,
``MEMBANK_STORAGE__BACKEND=qdrant``, ``MEMBANK_STORAGE__QDRANT__URL=...``.
``MEMBANK_CONFIG`` names the TOML file when ``--config`` is not given.
A bad setting fails at start with one line naming it.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

from membank_server.domain.errors import ConfigError

__all__ = [
    "EdgeSettings",
    "EmbedderSettings",
    "LimitSettings",
    "QdrantSettings",
    "ServerSettings",
    "Settings",
    "StorageSettings",
    "load_settings",
    "masked",
]

_PREFIX = "MEMBANK_"
_SECRET_KEYS = ("api_key", "password", "secret", "token")
MiB = 1024 * 1024


class _Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    max_body_bytes: int = 1 * MiB
    batch_max_body_bytes: int = 16 * MiB
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_json: bool = False
    purge_interval_seconds: float = 60.0


class LimitSettings(_Section):
    content_max_chars: int = 8192
    metadata_max_bytes: int = 16 * 1024
    batch_max_items: int = 1000
    search_max_limit: int = 100
    list_max_limit: int = 1000


class EdgeSettings(_Section):
    path: str = "./data"
    collection: str = "memories"
    hnsw_m: int = 16
    hnsw_ef_construct: int = 100
    hnsw_ef: int = 128
    full_scan_threshold: int = 10_000
    optimize_on_start: bool = False


class QdrantSettings(_Section):
    url: str | None = None
    api_key: str | None = None
    location: str | None = None
    path: str | None = None
    collection: str = "memories"
    timeout: float = 10.0
    retries: int = 3
    batch_size: int = 256
    hnsw_m: int = 16
    hnsw_ef_construct: int = 100
    hnsw_ef: int = 128
    quantization: Literal["scalar", "binary"] | None = None
    on_disk: bool = False
    shard_number: int | None = None
    replication_factor: int | None = None
    write_consistency_factor: int | None = None


class StorageSettings(_Section):
    backend: Literal["edge", "qdrant"] = "edge"
    distance: Literal["cosine", "dot", "euclid"] = "cosine"
    edge: EdgeSettings = msgspec.field(default_factory=EdgeSettings)
    qdrant: QdrantSettings = msgspec.field(default_factory=QdrantSettings)


class EmbedderSettings(_Section):
    provider: Literal["onnx", "openai"] = "onnx"
    batch_size: int = 32
    threads: int = 2
    base_url: str = "https://api.openai.com/v1"
    model: str = "text-embedding-3-small"
    api_key: str | None = None
    dimensions: int = 384
    timeout: float = 10.0
    retries: int = 3


class Settings(_Section):
    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    storage: StorageSettings = msgspec.field(default_factory=StorageSettings)
    embedder: EmbedderSettings = msgspec.field(default_factory=EmbedderSettings)
    limits: LimitSettings = msgspec.field(default_factory=LimitSettings)


def _merge(into: dict[str, Any], new: Mapping[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(_PREFIX) or name == f"{_PREFIX}CONFIG":
            continue
        path = name[len(_PREFIX) :].lower().split("__")
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{name}: conflicts with another MEMBANK_ variable")
        # An empty value means "unset", so None-able settings can be cleared.
        node[path[-1]] = None if value == "" else value
    return tree


def _check(settings: Settings) -> None:
    positive = {
        "server.port": settings.server.port,
        "server.workers": settings.server.workers,
        "server.max_body_bytes": settings.server.max_body_bytes,
        "server.batch_max_body_bytes": settings.server.batch_max_body_bytes,
        "limits.content_max_chars": settings.limits.content_max_chars,
        "limits.metadata_max_bytes": settings.limits.metadata_max_bytes,
        "limits.batch_max_items": settings.limits.batch_max_items,
        "limits.search_max_limit": settings.limits.search_max_limit,
        "limits.list_max_limit": settings.limits.list_max_limit,
        "embedder.batch_size": settings.embedder.batch_size,
        "embedder.threads": settings.embedder.threads,
        "embedder.dimensions": settings.embedder.dimensions,
    }
    for name, value in positive.items():
        if value <= 0:
            raise ConfigError(f"setting {name} must be positive, got {value}")
    if settings.server.port > 65535:
        raise ConfigError(f"setting server.port must be at most 65535, got {settings.server.port}")
    if settings.storage.backend == "edge" and settings.server.workers > 1:
        raise ConfigError(
            "setting server.workers must be 1 with storage.backend=edge: an embedded "
            "Qdrant Edge folder is opened by one process only (use storage.backend=qdrant "
            "to run several workers)"
        )
    if settings.storage.backend == "qdrant":
        q = settings.storage.qdrant
        if sum(x is not None for x in (q.url, q.location, q.path)) != 1:
            raise ConfigError(
                "storage.backend=qdrant needs exactly one of storage.qdrant.url, "
                "storage.qdrant.location (':memory:') or storage.qdrant.path"
            )
    if settings.embedder.provider == "openai" and not settings.embedder.base_url:
        raise ConfigError("setting embedder.base_url is required with embedder.provider=openai")


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
    try:
        settings = msgspec.convert(data, Settings, strict=False)
    except msgspec.ValidationError as exc:
        where = str(exc).replace("$.", "setting ").replace("`", "")
        raise ConfigError(f"bad setting: {where}") from exc
    _check(settings)
    return settings


def masked(settings: Settings) -> dict[str, Any]:
    """The settings as a plain tree with every secret replaced by ``***``."""

    def mask(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: ("***" if v and any(s in k for s in _SECRET_KEYS) else mask(v))
                for k, v in node.items()
            }
        return node

    return dict(mask(msgspec.to_builtins(settings)))
