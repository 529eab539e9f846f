"""Integrity of the hand-written conversational retrieval benchmark (tests/data/retrieval)."""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from datetime import UTC, datetime

import pytest

from tests.support.retrieval_suite import CATEGORIES, DEFAULT_ROOT, Conversation, load_suite

CONV_ID = re.compile(r"^conv_\d{2}$")
MIN_CONVERSATIONS = 20
MIN_QUESTIONS = 400
MIN_PER_CATEGORY = 40


@pytest.fixture(scope="module")
def suite() -> list[Conversation]:
    return load_suite()


def test_the_suite_is_big_enough(suite: list[Conversation]) -> None:
    assert len(suite) >= MIN_CONVERSATIONS
    assert sum(len(c.questions) for c in suite) >= MIN_QUESTIONS


def test_every_category_is_well_represented(suite: list[Conversation]) -> None:
    counts = Counter(q.category for c in suite for q in c.questions)
    assert set(counts) == set(CATEGORIES), counts
    for category in CATEGORIES:
        assert counts[category] >= MIN_PER_CATEGORY, (category, counts[category])


def test_files_have_exactly_the_documented_keys() -> None:
    paths = sorted(DEFAULT_ROOT.glob("conv_*.json"))
    assert paths
    for path in paths:
        raw = json.loads(path.read_text(encoding="utf-8"))
        assert set(raw) == {"id", "speakers", "sessions", "questions"}, path.name
        assert raw["id"] == path.stem, path.name
        for s in raw["sessions"]:
            assert set(s) == {"id", "date", "turns"}, s["id"]
            for t in s["turns"]:
                assert set(t) == {"id", "speaker", "text"}, t["id"]
        for q in raw["questions"]:
            assert set(q) == {"id", "category", "question", "answer", "evidence"}, q["id"]


def test_ids_are_well_formed_and_unique(suite: list[Conversation]) -> None:
    seen: set[str] = set()
    for conv in suite:
        assert CONV_ID.match(conv.id), conv.id
        ids = [conv.id]
        for n, session in enumerate(conv.sessions, start=1):
            assert session.id == f"{conv.id}-s{n}"
            ids.append(session.id)
            for m, turn in enumerate(session.turns, start=1):
                assert turn.id == f"{session.id}-t{m}"
                ids.append(turn.id)
        for n, question in enumerate(conv.questions, start=1):
            assert question.id == f"{conv.id}-q{n:02d}"
            ids.append(question.id)
        assert not seen.intersection(ids), conv.id
        assert len(ids) == len(set(ids)), conv.id
        seen.update(ids)


def test_every_evidence_turn_exists(suite: list[Conversation]) -> None:
    for conv in suite:
        turn_ids = {t.id for t in conv.turns()}
        for q in conv.questions:
            assert q.category in CATEGORIES, q.id
            assert q.evidence, f"{q.id} has no evidence"
            assert len(set(q.evidence)) == len(q.evidence), f"{q.id} repeats evidence"
            missing = [e for e in q.evidence if e not in turn_ids]
            assert not missing, (q.id, missing)


def test_multi_hop_questions_need_more_than_one_turn(suite: list[Conversation]) -> None:
    for conv in suite:
        for q in conv.questions:
            if q.category == "multi-hop":
                assert len(q.evidence) >= 2, q.id


def test_sessions_are_dated_and_in_order(suite: list[Conversation]) -> None:
    earliest = datetime(2023, 1, 1, tzinfo=UTC)
    latest = datetime(2026, 1, 1, tzinfo=UTC)
    for conv in suite:
        assert len(conv.sessions) >= 4, conv.id
        dates = [s.date for s in conv.sessions]
        assert all(earliest <= d < latest for d in dates), conv.id
        assert all(a < b for a, b in itertools.pairwise(dates)), conv.id
        stamps = [t.at for t in conv.turns()]
        assert all(a < b for a, b in itertools.pairwise(stamps)), conv.id


def test_turns_belong_to_the_pair_and_have_text(suite: list[Conversation]) -> None:
    for conv in suite:
        assert len(conv.speakers) == 2 and len(set(conv.speakers)) == 2, conv.id
        assert all(s.strip() for s in conv.speakers), conv.id
        for session in conv.sessions:
            assert 12 <= len(session.turns) <= 25, session.id
            assert {t.speaker for t in session.turns} == set(conv.speakers), session.id
            for turn in session.turns:
                assert turn.text.strip(), turn.id
        for q in conv.questions:
            assert q.question.strip() and q.answer.strip(), q.id


def test_turn_times_follow_the_session_date(suite: list[Conversation]) -> None:
    session = suite[0].sessions[0]
    first, second = session.turns[0], session.turns[1]
    assert first.at == session.date
    assert (second.at - first.at).total_seconds() == 60
    assert suite[0].turn(second.id) is second
