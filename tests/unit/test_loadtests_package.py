"""The black-box load-test package: scenarios, texts, shapes, and its isolation."""

from __future__ import annotations

import ast
import dataclasses
import random
from collections import Counter
from pathlib import Path

import pytest

import loadtests
from loadtests.scenarios import (
    DEFAULT_FILE,
    ENDPOINTS,
    Scenario,
    ScenarioError,
    load_scenario,
    parse_duration,
    scenario_names,
)
from loadtests.texts import TOPICS, diary_entry, free_query, persona

SCENARIOS = (
    "search-heavy",
    "write-heavy",
    "mixed",
    "batch-ingest",
    "cache-hot",
    "many-tenants",
    "spike",
    "step",
    "soak",
)


def test_loadtests_import_neither_membank_package() -> None:
    # Read, not imported: importing locust here would monkey-patch this test process.
    for path in Path(loadtests.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                assert not name.startswith(("membank_server", "membank_cli")), (path, name)


def test_the_shipped_file_defines_every_scenario_of_the_design() -> None:
    assert scenario_names() == list(SCENARIOS)
    for name in SCENARIOS:
        s = load_scenario(name)
        assert s.endpoints and all(e in ENDPOINTS.values() for e in s.endpoints)
    assert load_scenario("many-tenants").tenants == 10_000
    assert load_scenario("cache-hot").hot_queries > 0
    assert load_scenario("spike").shape == "spike"
    assert load_scenario("step").shape == "step"
    assert load_scenario("soak").seconds == 600
    assert load_scenario("mixed").users == 200


def test_a_scenario_survives_the_seed_file_round_trip() -> None:
    s = load_scenario("spike")
    assert Scenario.from_dict(s.to_dict()) == s


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[scenarios.x]\nweights = { search = 1, fly = 2 }\n", "unknown task 'fly'"),
        ("[scenarios.x]\nusers = 0\n", "must be positive"),
        ("[scenarios.x]\nshape = 'zigzag'\n", "shape must be one of"),
        ("[scenarios.x]\nduration = 'soon'\n", "not a positive number"),
        ("[scenarios.x]\nthink_time = [2, 1]\n", "think_time"),
        ("[scenarios.x]\ncolour = 'red'\n", "unknown setting 'colour'"),
        ("[scenarios.y]\n", "no scenario 'x'"),
    ],
)
def test_bad_scenarios_are_refused_by_name(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "s.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError, match=message):
        load_scenario("x", path)


def test_a_copied_file_is_the_users_to_edit(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(DEFAULT_FILE.read_text().replace("users = 200", "users = 7"))
    assert load_scenario("mixed", path).users == 7


def test_durations() -> None:
    assert [parse_duration(t) for t in ("90", "90s", "10m", "1h", "1.5m")] == [
        90,
        90,
        600,
        3600,
        90,
    ]


def test_scaling_keeps_at_least_one_tenant() -> None:
    s = load_scenario("many-tenants")
    assert s.scaled(0.001).tenants == 10
    assert s.scaled(0.000001).tenants == 1


def test_personas_read_as_real_and_vary() -> None:
    facts = [f for i in range(500) for f in persona(f"t{i}", 10)]
    texts = {f.text for f in facts}
    # People share some facts ("I'm terrified of heights."), but no text is common.
    assert len(texts) > 0.5 * len(facts)
    assert max(Counter(f.text for f in facts).values()) < 0.01 * len(facts)
    assert not any("lorem" in t.lower() or "{" in t for t in texts)
    assert all(t[0].isupper() and t.endswith((".", "!")) for t in texts)
    one = persona("alice", len(TOPICS) + 5)
    assert len(one) == len(TOPICS) == len({f.topic for f in one})
    assert persona("alice", 5) == persona("alice", 5)
    rng = random.Random(3)
    entries = {diary_entry(rng) for _ in range(300)}
    queries = {free_query(rng) for _ in range(300)}
    assert len(entries) > 250 and len(queries) > 250
    assert all(q.endswith("?") for q in queries)


def test_shapes_follow_the_share_of_the_run() -> None:
    spike = load_scenario("spike")
    assert [spike.users_at(200, p) for p in (0, 0.39, 0.4, 0.59, 0.61, 0.99)] == [
        40,
        40,
        200,
        200,
        40,
        40,
    ]
    step = dataclasses.replace(load_scenario("step"), steps=4)
    assert [step.users_at(200, p) for p in (0, 0.24, 0.25, 0.5, 0.75, 0.999)] == [
        50,
        50,
        100,
        150,
        200,
        200,
    ]
    assert load_scenario("mixed").users_at(200, 0.5) == 200
