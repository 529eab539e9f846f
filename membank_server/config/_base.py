"""The settings' building blocks: a strict section, and secret masking."""

from __future__ import annotations

import re
from typing import Any

import msgspec

__all__ = ["SECRET_KEYS", "URL_SECRET", "MiB", "Section", "is_secret", "masked_tree"]

MiB = 1024 * 1024
#: Setting names ending so hold secrets (``keys`` too: the data keys; ``key``: the
#: backup key; a webhook URL may carry its token).
SECRET_KEYS = (
    "api_key",
    "admin_key",
    "index_key",
    "password",
    "secret",
    "secret_key",
    "token",
    "passphrase",
    "webhook_url",
)
#: Setting names that are secrets as a whole word.
SECRET_NAMES = ("keys", "key")


def is_secret(name: str) -> bool:
    """Whether the setting ``name`` holds a secret (masked, and redacted from logs)."""
    return name in SECRET_NAMES or name.endswith(SECRET_KEYS)


_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]+@")
URL_SECRET = re.compile(r"(://[^:/@\s]*:)([^@\s]+)@")


class Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A settings table: unknown keys are refused, so a typo fails at start."""


def masked_tree(section: msgspec.Struct) -> dict[str, Any]:
    """A settings section as a plain tree with every secret replaced by ``***``."""

    def mask(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: ("***" if v and is_secret(k) else mask(v)) for k, v in node.items()}
        if isinstance(node, str):
            # A password inside a URL or DSN: scheme://user:password@host
            return _URL_PASSWORD.sub(r"\1***@", node)
        return node

    return dict(mask(msgspec.to_builtins(section)))
