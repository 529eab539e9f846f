"""The conversational retrieval benchmark's loader (it lives with ``membank eval``), with
the suite's folder resolved from this file, so tests run from anywhere."""

from __future__ import annotations

from pathlib import Path

from membank_cli.eval.conversations import (
    CATEGORIES,
    Conversation,
    Question,
    Session,
    Turn,
    as_eval_suite,
    load_conversation,
)
from membank_cli.eval.conversations import load_suite as _load_suite

__all__ = [
    "CATEGORIES",
    "DEFAULT_ROOT",
    "Conversation",
    "Question",
    "Session",
    "Turn",
    "as_eval_suite",
    "load_conversation",
    "load_suite",
]

DEFAULT_ROOT = Path(__file__).resolve().parent.parent / "data" / "retrieval"


def load_suite(root: Path | None = None) -> list[Conversation]:
    """Every conversation under ``root`` (default: tests/data/retrieval)."""
    return _load_suite(DEFAULT_ROOT if root is None else root)
