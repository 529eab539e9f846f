"""Names membank puts into SQL text: checked where they come from (settings), then quoted."""

from __future__ import annotations

import re

from membank_server.domain.errors import ConfigError

__all__ = ["check_ident", "qualify", "quote_ident"]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$(?!\n)")


def check_ident(value: str, what: str, *, longest: int = 40) -> str:
    """Refuse names that would need quoting tricks; ``longest`` leaves room for suffixes.

    Raises:
        ConfigError: naming ``what`` (the setting) and the value refused.
    """
    if not (_IDENT.match(value) and len(value) <= longest):
        raise ConfigError(
            f"{what} must be a letter or _ then up to {longest - 1} letters, digits or _;"
            f" got {value!r}"
        )
    return value


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def qualify(schema: str, name: str) -> str:
    """``"schema"."name"``."""
    return f"{quote_ident(schema)}.{quote_ident(name)}"
