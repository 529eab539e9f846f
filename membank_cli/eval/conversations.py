"""Loader of the hand-written conversational retrieval benchmark (tests/data/retrieval).

Each ``conv_NN.json`` file holds one conversation between two people over several dated
sessions, plus questions whose answers are spread over labelled evidence turns. The
files are plain JSON (see tests/data/retrieval/README.md); this module turns them into
small frozen dataclasses. Turns get a timestamp: the session's date plus one minute per
turn index (the first turn is at the session's date), so every turn of a conversation is
strictly time-ordered.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from membank_server.services.evaluation import EvalMemory, EvalQuestion, EvalSuite

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

#: Where the suite is shipped: the repository's tests/data/retrieval (run from its root).
DEFAULT_ROOT = Path("tests") / "data" / "retrieval"
CATEGORIES = ("single-hop", "multi-hop", "temporal", "open-domain")


@dataclass(frozen=True, slots=True)
class Turn:
    id: str
    speaker: str
    text: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    date: datetime
    turns: tuple[Turn, ...]


@dataclass(frozen=True, slots=True)
class Question:
    id: str
    category: str
    question: str
    answer: str
    evidence: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Conversation:
    id: str
    speakers: tuple[str, ...]
    sessions: tuple[Session, ...]
    questions: tuple[Question, ...]

    def turns(self) -> Iterator[Turn]:
        """Every turn of the conversation, in order."""
        for session in self.sessions:
            yield from session.turns

    def turn(self, turn_id: str) -> Turn:
        """The turn with this id (KeyError if there is none)."""
        for turn in self.turns():
            if turn.id == turn_id:
                return turn
        raise KeyError(turn_id)


def _str(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise ValueError(f"{where}: {key!r} must be a string, got {value!r}")
    return value


def _list(obj: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = obj.get(key)
    if not isinstance(value, list):
        raise ValueError(f"{where}: {key!r} must be a list, got {type(value).__name__}")
    return value


def _date(text: str, where: str) -> datetime:
    try:
        parsed = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError as exc:
        raise ValueError(f"{where}: date {text!r} is not YYYY-MM-DDTHH:MM:SSZ") from exc
    return parsed.replace(tzinfo=UTC)


def _session(raw: Mapping[str, Any], where: str) -> Session:
    sid = _str(raw, "id", where)
    date = _date(_str(raw, "date", sid), sid)
    turns = tuple(
        Turn(
            id=_str(t, "id", sid),
            speaker=_str(t, "speaker", sid),
            text=_str(t, "text", sid),
            at=date + timedelta(minutes=index),
        )
        for index, t in enumerate(_list(raw, "turns", sid))
    )
    return Session(id=sid, date=date, turns=turns)


def _question(raw: Mapping[str, Any], where: str) -> Question:
    qid = _str(raw, "id", where)
    evidence = _list(raw, "evidence", qid)
    if not all(isinstance(e, str) for e in evidence):
        raise ValueError(f"{qid}: evidence must be a list of turn ids")
    return Question(
        id=qid,
        category=_str(raw, "category", qid),
        question=_str(raw, "question", qid),
        answer=_str(raw, "answer", qid),
        evidence=tuple(evidence),
    )


def load_conversation(path: Path) -> Conversation:
    """Parse one ``conv_NN.json`` file."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise ValueError(f"{path.name}: top level must be an object")
    cid = _str(raw, "id", path.name)
    speakers = _list(raw, "speakers", cid)
    if not all(isinstance(s, str) for s in speakers):
        raise ValueError(f"{cid}: speakers must be strings")
    return Conversation(
        id=cid,
        speakers=tuple(speakers),
        sessions=tuple(_session(s, cid) for s in _list(raw, "sessions", cid)),
        questions=tuple(_question(q, cid) for q in _list(raw, "questions", cid)),
    )


def load_suite(root: Path | None = None) -> list[Conversation]:
    """Every conversation under ``root`` (default: tests/data/retrieval), sorted by file name."""
    folder = DEFAULT_ROOT if root is None else root
    return [load_conversation(p) for p in sorted(folder.glob("conv_*.json"))]


def as_eval_suite(conversations: Sequence[Conversation], name: str = "conversations") -> EvalSuite:
    """One memory per turn (``<speaker>: <text>``, at the turn's time), one user per
    conversation (its id), and its questions."""
    return EvalSuite(
        name,
        tuple(
            EvalMemory(t.id, c.id, f"{t.speaker}: {t.text}", t.at)
            for c in conversations
            for t in c.turns()
        ),
        tuple(
            EvalQuestion(q.id, c.id, q.question, q.category, q.evidence)
            for c in conversations
            for q in c.questions
        ),
    )
