"""``membank eval retrieval`` on the shipped suites: every mode answers every question.

One run of the command (real ONNX embedder, a scratch Edge store): quality is a
figure the command prints, never asserted here. A lexical search finds nothing when
no memory of the user shares a term with the question; every other mode must return
results for every question.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from membank_cli.app import app
from membank_cli.eval.quality import load_quality_set
from membank_cli.eval.retrieval import render
from membank_cli.output import Output
from membank_server.lexical import SnowballAnalyzer
from membank_server.services.evaluation import EvalSuite, ModeReport, Score
from tests.support.retrieval_suite import DEFAULT_ROOT, as_eval_suite, load_suite

_ROOT = Path(__file__).resolve().parents[2]
_QUALITY = _ROOT / "tests" / "integration" / "quality_set.py"


@pytest.fixture(scope="module")
def figures(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    env = {"MEMBANK_STORAGE__EDGE__PATH": str(tmp_path_factory.mktemp("data"))}
    args = ["eval", "retrieval", "--data", str(DEFAULT_ROOT), "--quality-set", str(_QUALITY)]
    result = CliRunner().invoke(app, [*args, "--json"], env=env)
    assert result.exit_code == 0, result.output
    found: list[dict[str, Any]] = json.loads(result.stdout)
    return found


def _unmatched(suite: EvalSuite) -> int:
    """Questions no memory of their user shares an analysed term with."""
    analyzer = SnowballAnalyzer()
    terms: dict[str, set[str]] = {}
    for m in suite.memories:
        terms.setdefault(m.user_id, set()).update(analyzer.terms(m.content))
    return sum(1 for q in suite.questions if not terms[q.user_id] & set(analyzer.terms(q.text)))


def test_every_mode_answers_every_question_of_both_suites(
    figures: list[dict[str, Any]],
) -> None:
    suites = {
        "conversations": as_eval_suite(load_suite()),
        "quality set": load_quality_set(_QUALITY),
    }
    assert [f["suite"] for f in figures] == list(suites)
    for found in figures:
        suite = suites[found["suite"]]
        assert (found["memories"], found["questions"]) == (
            len(suite.memories),
            len(suite.questions),
        )
        modes = found["modes"]
        assert set(modes) == {"dense", "lexical", "hybrid"}
        for name, mode in modes.items():
            overall = mode["categories"]["all"]
            assert overall["questions"] == len(suite.questions), name
            assert set(mode["categories"]) == {"all", *suite.categories}, name
            assert mode["p50_ms"] > 0, name
            expected_empty = _unmatched(suite) if name == "lexical" else 0
            assert overall["empty"] == expected_empty, (found["suite"], name)


def test_the_report_prints_a_table_per_suite_and_mode(capsys: pytest.CaptureFixture[str]) -> None:
    suite = as_eval_suite(load_suite()[:1])
    report = ModeReport("hybrid", {"all": Score(2, 1, 2, 2, 1.5, 1, 0)}, [1.0, 3.0])
    for c in suite.categories:
        report.scores[c] = Score(1, 1, 1, 1, 1.0, 1, 0)
    render(Output(), [(suite, [report])])
    out = capsys.readouterr().out
    assert "R@5" in out and "hybrid" in out and "p50 ms" in out
