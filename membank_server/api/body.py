"""Checks every JSON body passes before anything decodes it, all without recursion.

msgspec (and Litestar's use of it) decodes recursively, takes the last of duplicate
keys silently and turns bad UTF-8 into an unexpected error. So before a handler
runs, a body is refused with 400 when it is

* not UTF-8 (``invalid_utf8``),
* nested deeper than ``limits.json_max_depth`` objects and arrays (``too_deep``):
  counted over the bytes with strings blanked out, never by walking a tree,
* not JSON at all (``malformed_json``), or has an object with the same key twice
  (``duplicate_key``; ``{"user_id": "u", "user_id": "v"}`` would otherwise be "v"),

and with 422 when a string (or a key) holds a NUL character (``invalid_input``:
PostgreSQL cannot store one, and no backend should store what another cannot), or
when it does not match the handler's body type *strictly* (:func:`check_types`):
Litestar converts bodies leniently (``"10"`` for an integer, ``0`` for a date-time
as a Unix time), which would accept what the schema calls invalid.
"""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec
import numpy as np

__all__ = ["BodyProblem", "check_json_body", "check_types"]

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
# Arrays of numbers (vectors) hold no keys: blanked before the duplicate-key parse,
# which would otherwise spend most of its time making floats.
_NUMBERS = re.compile(rb"\[[-+0-9.eE,\s]*\]")
_KEEP = bytes(range(256)).translate(None, b"[]{}")
_NUL = "\x00"
#: Where a msgspec validation error points: "... - at `$.memories[3].content`".
_AT = re.compile(r"at `\$\.?([^`]*)`")


class BodyProblem(Exception):
    """Why a body was refused: the HTTP status, an error code, a message and details."""

    def __init__(
        self, status: int, code: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details = details or {}


def _depth(body: bytes) -> int:
    brackets = _STRING.sub(b"", body).translate(None, _KEEP)
    if not brackets:
        return 0
    steps = np.frombuffer(brackets, dtype=np.uint8)
    opening = (steps == ord("[")) | (steps == ord("{"))
    return int(np.cumsum(np.where(opening, 1, -1)).max())


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise BodyProblem(400, "duplicate_key", f"the key {key!r} appears twice in one object")
        seen.add(key)
    return dict(pairs)


def _walk(document: Any) -> None:
    """Refuse NUL in any string or key; make integral floats ints, as JSON Schema
    counts ``1.0`` an integer (in place, iteratively)."""
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if _NUL in key:
                    raise BodyProblem(422, "invalid_input", "a key holds a NUL character")
                if isinstance(value, float) and value.is_integer():
                    node[key] = int(value)
                else:
                    stack.append(value)
        elif isinstance(node, list):
            for i, value in enumerate(node):
                if isinstance(value, float) and value.is_integer():
                    node[i] = int(value)
                else:
                    stack.append(value)
        elif isinstance(node, str) and _NUL in node:
            raise BodyProblem(422, "invalid_input", "a string holds a NUL character")


def check_json_body(body: bytes, max_depth: int) -> Any:
    """Raise :class:`BodyProblem` for a body no handler should see (module docs); the
    document as :func:`check_types` takes it (number arrays of large bodies emptied)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyProblem(
            400, "invalid_utf8", f"the body is not valid UTF-8 (byte {exc.start})"
        ) from exc
    # Nesting needs an opening bracket per level: a body with few cannot be deep.
    shallow = body.count(b"[") + body.count(b"{") <= max_depth
    depth = 0 if shallow else _depth(body)
    if depth > max_depth:
        raise BodyProblem(
            400, "too_deep", f"JSON nested {depth} levels deep; at most {max_depth} allowed"
        )
    try:
        document = json.loads(
            _NUMBERS.sub(b"[]", body).decode("utf-8") if len(body) > 4096 else text,
            object_pairs_hook=_pairs,
        )
    except BodyProblem:
        raise
    except (ValueError, RecursionError) as exc:
        raise BodyProblem(400, "malformed_json", f"the body is not valid JSON: {exc}") from exc
    _walk(document)
    return document


def check_types(document: Any, target: type[Any]) -> None:
    """Raise :class:`BodyProblem` (422) unless ``document`` (from :func:`check_json_body`)
    is a ``target`` with strict types: no string for a number, no number for a time."""
    try:
        msgspec.convert(document, type=target, strict=True)
    except msgspec.ValidationError as exc:
        text = str(exc)
        found = _AT.search(text)
        details = {"field": found.group(1)} if found else {}
        raise BodyProblem(422, "invalid_input", text, details) from exc
