"""The HTTP API against its own OpenAPI schema: schemathesis with every check and phase.

The run a new user would make: the ``schemathesis`` command line against a real
``membank serve`` on a fresh data folder, ``--checks all`` (no 5xx, documented
status codes, content types, bodies and headers, schema-valid requests accepted and
invalid ones refused, ``ignored_auth``, ``use_after_free`` and ``ensure_resource_
availability``, ``Allow`` headers, unsupported methods ...), and the phases
``examples``, ``coverage`` (boundary and negative values of every parameter),
``fuzzing`` and ``stateful`` (sequences through the OpenAPI links: a created memory's
id and user to its read, change, history and delete; a created key to its read and
revocation). Lockout and rate limits are raised for the run, which sends thousands
of requests, many without a key.

Seeded data gives the operations that name existing memories something to find: a
user with memories, a key and a team, named in the run's configuration file.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.llm import ChatDouble
from tests.support.server import ADMIN_KEY, ServerProcess

#: Cases per operation and phase; the seed keeps the run the same from one CI to the next.
MAX_EXAMPLES = 40
SEED = 1
#: The run must have made at least this many requests, or it proves little.
MIN_CASES = 1500


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root: Path = tmp_path_factory.mktemp("schemathesis")
    with ChatDouble() as chat:  # fact extraction talks to a local chat double
        proc = ServerProcess(
            root / "data",
            env={
                "MEMBANK_SECURITY__LOCKOUT__MAX_FAILURES": "1000000",
                "MEMBANK_SECURITY__MAX_CONCURRENT_PER_KEY": "1000",
                "MEMBANK_LLM__BASE_URL": chat.url,
            },
        )
        proc.start()
        yield proc
        proc.stop()


def _seed(server: ServerProcess) -> dict[str, str]:
    user, team = "st-seed", "st-team"
    with server.client() as http:
        ids = [
            http.post(
                "/v1/memories",
                json={"user_id": user, "content": f"fact {i} of the seed", "metadata": {"n": i}},
            )
            .raise_for_status()
            .json()["id"]
            for i in range(3)
        ]
        http.patch(
            f"/v1/memories/{ids[0]}", params={"user_id": user}, json={"content": "changed"}
        ).raise_for_status()
        key = http.post("/v1/admin/keys", json={"name": "seed", "user_id": user})
        http.put(f"/v1/admin/teams/{team}/members/{user}").raise_for_status()
    return {
        "user": user,
        "memory": ids[0],
        "key": key.raise_for_status().json()["key"]["id"],
        "team": team,
    }


def _config(seed: dict[str, str]) -> str:
    """Operations that read one memory get the seeded one (random ids only reach 404)."""
    reads = ("GET /v1/memories/{memory_id}", "GET /v1/memories/{memory_id}/history")
    blocks = [
        f'[[operations]]\ninclude-name = "{name}"\n'
        f'parameters = {{ "path.memory_id" = "{seed["memory"]}", '
        f'"query.user_id" = "{seed["user"]}" }}\n'
        for name in reads
    ]
    blocks.append(
        '[[operations]]\ninclude-name = "GET /v1/admin/keys/{key_id}"\n'
        f'parameters = {{ "path.key_id" = "{seed["key"]}" }}\n'
    )
    blocks.append(
        '[[operations]]\ninclude-name = "GET /v1/admin/teams/{team}/members"\n'
        f'parameters = {{ "path.team" = "{seed["team"]}" }}\n'
    )
    return "\n".join(blocks)


def test_api_conforms_to_its_schema(api_server: ServerProcess, tmp_path: Path) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(_config(_seed(api_server)))
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--config-file",
        str(config),
        "run",
        f"{api_server.url}/schema/openapi.json",
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--continue-on-failure",
        "--header",
        f"Authorization: Bearer {ADMIN_KEY}",
        "--no-color",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"schemathesis found failures:\n{output[-20000:]}"
    counted = re.search(r"(\d+) generated, (\d+) passed", output)
    assert counted is not None, output[-3000:]
    generated, passed = map(int, counted.groups())
    assert generated == passed
    assert generated >= MIN_CASES, f"only {generated} cases"
    for phase in ("Coverage", "Fuzzing", "Stateful"):
        assert re.search(rf"✅ {phase}", output), f"the {phase} phase did not pass:\n{output}"
    print(f"schemathesis: {generated} cases, every check, no failures")
