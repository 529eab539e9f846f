"""What a DSN may say about itself: where it points, and text with its password cut out.

asyncpg takes URL DSNs (``postgresql://user:password@host:port/db``); the password
can also stand in the query (``?password=...``). Every message, log line and repr
that membank makes about a database goes through :func:`where` or :func:`redact`.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["redact", "where"]

_MASK = "***"
#: The password of a URL too malformed for urlsplit (an unclosed IPv6 bracket).
_USERINFO = re.compile(r"//[^/@:]*:([^/@]*)@")


def where(dsn: str) -> str:
    """``PostgreSQL at host:port/db``: enough to find the database, nothing to log in with."""
    try:
        parts = urlsplit(dsn)
        host, port = parts.hostname or "localhost", parts.port or 5432
    except ValueError:  # a malformed port: say nothing of the DSN rather than echo it
        return "PostgreSQL at an unreadable DSN"
    db = unquote(parts.path.lstrip("/")) or "?"
    return f"PostgreSQL at {host}:{port}/{db}"


def redact(text: str, dsn: str) -> str:
    """``text`` with the DSN's password, as written and as decoded, replaced by ``***``."""
    try:
        parts = urlsplit(dsn)
        secrets = [parts.password or "", *parse_qs(parts.query).get("password", ())]
    except ValueError:
        found = _USERINFO.search(dsn)
        secrets = [found.group(1)] if found else []
    # Longest first: a decoded password may be a substring of its encoded form.
    for secret in sorted({s for p in secrets for s in (p, unquote(p)) if s}, key=len, reverse=True):
        text = text.replace(secret, _MASK)
    return text
