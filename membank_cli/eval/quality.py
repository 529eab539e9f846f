"""The 60-question quality set (tests/integration/quality_set.py) as an evaluation suite.

The set is Python literals; it is read with ``ast.literal_eval``, never run. One user
holds the 60 answer memories of ``QA_PAIRS`` and the ``UNRELATED`` statements
(category ``explicit``: self-contained memories); a second user the same questions'
answers worded as people speak (``IMPLICIT_QA_PAIRS``, category ``implicit``) and the
same unrelated statements.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from membank_server.domain.errors import InvalidInput
from membank_server.services.evaluation import EvalMemory, EvalQuestion, EvalSuite

__all__ = ["DEFAULT_QUALITY_SET", "load_quality_set"]

DEFAULT_QUALITY_SET = Path("tests") / "integration" / "quality_set.py"
_NAMES = ("QA_PAIRS", "IMPLICIT_QA_PAIRS", "UNRELATED")


def _literals(path: Path) -> dict[str, Any]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    except (OSError, SyntaxError) as exc:
        raise InvalidInput(f"cannot read the quality set {path}: {exc}") from exc
    found: dict[str, Any] = {}
    for node in tree.body:
        target: ast.expr
        value: ast.expr | None
        if isinstance(node, ast.AnnAssign):
            target, value = node.target, node.value
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in _NAMES and value is not None:
            found[target.id] = ast.literal_eval(value)
    missing = [n for n in _NAMES if n not in found]
    if missing:
        raise InvalidInput(f"the quality set {path} lacks {', '.join(missing)}")
    return found


def load_quality_set(path: Path = DEFAULT_QUALITY_SET) -> EvalSuite:
    data = _literals(path)
    memories: list[EvalMemory] = []
    questions: list[EvalQuestion] = []
    for user, name in (("quality-explicit", "QA_PAIRS"), ("quality-implicit", "IMPLICIT_QA_PAIRS")):
        category = user.removeprefix("quality-")
        for i, (question, answer) in enumerate(data[name]):
            key = f"{user}-a{i}"
            memories.append(EvalMemory(key, user, answer))
            questions.append(EvalQuestion(f"{user}-q{i}", user, question, category, (key,)))
        memories.extend(
            EvalMemory(f"{user}-u{i}", user, text) for i, text in enumerate(data["UNRELATED"])
        )
    return EvalSuite("quality set", tuple(memories), tuple(questions))
