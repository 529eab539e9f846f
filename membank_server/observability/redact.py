"""Redaction: what may never reach a log line, and the step that removes it.

Every log record, whatever logger wrote it (ours, Litestar's, uvicorn's, asyncpg's,
the CLI's), passes :meth:`Redactor.scrub` before it is rendered. It removes

* API keys (``mbk_...``), ``Authorization: Bearer ...`` and cookie values, wherever
  they appear in the text;
* the secrets this process was configured with (admin key, data keys, the index
  key, passwords in DSNs and URLs, provider API keys), registered at start;
* the string values of the request being served (memory content, metadata values,
  search texts) and its credential headers: :class:`RequestCapture` keeps the raw
  body of the current request in a context variable, parsed only if something is
  logged while it runs, so a traceback or an exception message quoting the body is
  scrubbed too.

Tracebacks are rendered without local variables (see ``logs``), so the values a
frame held never reach the text in the first place; this step catches what an
exception *message* carries.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any

__all__ = ["REDACTED", "Redactor", "RequestCapture", "capture", "redactor"]

REDACTED = "[redacted]"
#: Body values shorter than this are too common to scrub without mangling the line.
_MIN_VALUE = 4
#: Bodies larger than this are scrubbed by their first values only (bounded work).
_MAX_VALUES = 20_000

_PATTERNS = [
    re.compile(r"mbk_[A-Za-z0-9]{1,64}_[A-Za-z0-9_\-]+"),
    re.compile(r"(?i)(bearer\s+)[^\s'\",;]+"),
    re.compile(r"(?i)((?:authorization|proxy-authorization|cookie|set-cookie|x-api-key)"
               r"['\"]?\s*[:=,]\s*['\"]?(?:b['\"])?)[^'\"\r\n]+"),
    # scheme://user:password@host
    re.compile(r"(://[^:/@\s]*:)[^@\s]+(@)"),
]  # fmt: skip


class RequestCapture:
    """The raw parts of one request that may hold secrets: credential headers and body."""

    __slots__ = ("_chunks", "_values", "headers")

    def __init__(self, headers: Iterable[str] = ()) -> None:
        self.headers = [h for h in headers if h]
        self._chunks: list[bytes] = []
        self._values: list[str] | None = None

    def add_body(self, chunk: bytes) -> None:
        if chunk:
            self._chunks.append(chunk)
            self._values = None

    def values(self) -> list[str]:
        """The body's string values (and the headers), longest first; parsed on first use."""
        if self._values is None:
            found = list(self.headers)
            body = b"".join(self._chunks)
            if body:
                text = body.decode("utf-8", "replace")
                try:
                    _strings(json.loads(text), found)
                except (ValueError, RecursionError):
                    # Not JSON (or too deep to walk): scrub the raw body as one value.
                    found.append(text)
            self._values = sorted({v for v in found if len(v) >= _MIN_VALUE}, key=len, reverse=True)
        return self._values


def _strings(node: Any, out: list[str]) -> None:
    """Every string value (not keys) of a decoded JSON document, walked iteratively."""
    stack = [node]
    while stack and len(out) < _MAX_VALUES:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


_current: ContextVar[RequestCapture | None] = ContextVar("membank_request_capture", default=None)


def capture(headers: Iterable[str] = ()) -> RequestCapture:
    """Start capturing the current request (call once per request, in its task)."""
    found = RequestCapture(headers)
    _current.set(found)
    return found


class Redactor:
    """Removes secrets from text; one per process (:data:`redactor`)."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()

    def add_secrets(self, *values: str | None) -> None:
        """Register configured secrets (keys, passwords) to remove wherever they appear."""
        self._secrets.update(v for v in values if v and len(v) >= _MIN_VALUE)

    def scrub(self, text: str) -> str:
        if not text:
            return text
        request = _current.get()
        for value in (*sorted(self._secrets, key=len, reverse=True),
                      *(request.values() if request is not None else ())):  # fmt: skip
            if value in text:
                text = text.replace(value, REDACTED)
        for pattern in _PATTERNS:
            text = pattern.sub(_keep_prefix, text)
        return text

    def scrub_value(self, value: Any) -> Any:
        """Scrub a structured log field: strings directly, containers element by element."""
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {k: self.scrub_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub_value(v) for v in value]
        if isinstance(value, int | float | bool) or value is None:
            return value
        return self.scrub(str(value))


def _keep_prefix(match: re.Match[str]) -> str:
    groups = match.groups()
    if len(groups) == 2:  # a URL password: keep scheme/user and host
        return f"{groups[0]}***{groups[1]}"
    prefix = groups[0] if groups else ""
    return f"{prefix}{REDACTED}"


#: The process's redactor: the logging setup and the bootstrap share it.
redactor = Redactor()
