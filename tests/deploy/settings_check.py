"""Whether an environment a manifest gives membank is made of real settings."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from membank_server.config import Settings, load_settings

__all__ = ["SECRET_NAMES", "accepted", "is_secret", "setting_path"]

#: Settings whose value is a secret, or may hold one (a password inside a URL).
SECRET_NAMES = (
    "API_KEY",
    "ADMIN_KEY",
    "PASSWORD",
    "SECRET",
    "SECRET_KEY",
    "ACCESS_KEY",
    "TOKEN",
    "DSN",
    "REDIS_URL",
    "L3_URL",
    "PASSPHRASE",
    "WEBHOOK_URL",
)


def is_secret(name: str) -> bool:
    return name.endswith(SECRET_NAMES)


def setting_path(name: str) -> str:
    """``MEMBANK_SERVER__PORT`` -> ``server.port``, after checking every part names a
    field of the settings tree (AssertionError naming the variable otherwise)."""
    assert name.startswith("MEMBANK_") and "__" in name, f"{name} is not a setting's name"
    parts = name.removeprefix("MEMBANK_").lower().split("__")
    kind: object = Settings
    for i, part in enumerate(parts):
        assert isinstance(kind, type) and issubclass(kind, msgspec.Struct), (
            f"{name}: {'.'.join(parts[:i])} is not a table"
        )
        fields = {f.name: f.type for f in msgspec.structs.fields(kind)}
        assert part in fields, f"{name}: no setting {'.'.join(parts[: i + 1])}"
        kind = fields[part]
    return ".".join(parts)


def accepted(env: Mapping[str, str]) -> Settings:
    """Load ``env``'s MEMBANK_* variables as membank does at start (raises ConfigError)."""
    for name in env:
        if name.startswith("MEMBANK_"):
            setting_path(name)
    return load_settings(environ={k: v for k, v in env.items() if k.startswith("MEMBANK_")})
