"""Logging: one structlog pipeline for every logger, redacted, tracebacks without locals.

The renderer: JSON lines when ``json`` is True; human-readable console lines when it
is False; when it is None (the default, ``server.log_json`` unset) JSON if stderr is
not a terminal (a container, systemd, a file) and console lines on a terminal.

Every record, from any logger, goes through the same chain: the traceback (if any)
is formatted as plain text with ``traceback`` (frames and source lines, never the
values of local variables: the locals of a request frame hold its headers and
body), then :data:`~membank_server.observability.redact.redactor` scrubs every
field, then the renderer writes one line (plus the traceback) to stderr.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import MutableMapping
from types import TracebackType
from typing import Any

import structlog

from membank_server.observability.redact import redactor

__all__ = ["configure_logging", "redact_event"]


def redact_event(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> dict[str, Any]:
    """structlog processor: scrub every field of a record (message, exception, extras)."""
    return {k: v if k.startswith("_") else redactor.scrub_value(v) for k, v in event_dict.items()}


def configure_logging(level: str = "info", json: bool | None = None) -> None:
    """Route stdlib and structlog records through one redacting renderer on stderr."""
    if json is None:
        json = not sys.stderr.isatty()
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                # Plain traceback text: frames and code, never local variables.
                structlog.processors.format_exc_info,
                redact_event,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.captureWarnings(True)
    _route_uncaught()


def _route_uncaught() -> None:
    """Uncaught exceptions (main thread, other threads) go through the same pipeline
    instead of Python's default printer, which writes to stderr unredacted."""
    log = logging.getLogger("membank")

    def main_hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        log.critical("uncaught exception", exc_info=(kind, exc, tb))

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit or args.exc_value is None:
            return
        log.critical(
            "uncaught exception in thread %s",
            args.thread.name if args.thread else "?",
            exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
        )

    sys.excepthook = main_hook
    threading.excepthook = thread_hook
