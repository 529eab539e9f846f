"""Property-based conformance of the HTTP API to its own OpenAPI schema (schemathesis).

A real ``membank serve`` process on a fresh data folder publishes its schema at
``/schema/openapi.json``; schemathesis makes requests for every operation in it,
and every answer must be: not a 5xx, a documented status with the documented
content type, a body and headers that match the schema, and, where the schema
asks for an API key, refused without one (``ignored_auth`` replays a successful
request without the key and with a wrong one).

Each operation is fuzzed with valid data and with invalid data; an operation that
names memories, users, keys or teams also with valid data pointed at ones that
exist (random ids only reach the 404 branch). The schema is looser than the
server (unknown fields, query xor vector, limits), so generated bodies seldom
succeed: a few hand-written requests make sure every success answer is checked.

The operations are driven through ``APIOperation.as_strategy()`` and Hypothesis'
``@given``, not through ``schemathesis.pytest.from_fixture``: that lazy loader of
schemathesis 4.32 sets ``Function._nodeid``, which pytest 9.2 no longer has, and
fails before the first request; and the schema exists only once the server runs,
which rules out the import-time ``schema.parametrize()``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.core.failures import Failure
from schemathesis.core.result import Err
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.schemas import OpenApiSchema

from tests.support.server import ADMIN_KEY, AUTH, ServerProcess

#: Generated cases per operation and kind of run (valid, invalid, on existing data).
MAX_EXAMPLES = 25
#: The run must have made at least this many requests, or it proves little.
MIN_CASES = 1000
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "ignored_auth",
)
#: Names under which an operation refers to existing data.
_DATA_PARAMETERS = {"memory_id", "user_id", "key_id", "team"}
#: Operations whose JSON body names the user (``user_id``) the data belongs to.
_USER_BODY_PATHS = {"/v1/memories", "/v1/memories/batch", "/v1/search"}
_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    # Failures are collected, not raised, so there is nothing to shrink.
    phases=[Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root: Path = tmp_path_factory.mktemp("schemathesis")
    # ignored_auth sends requests without a key and with a wrong one: they must
    # not lock the loopback client out for the rest of the run.
    proc = ServerProcess(root / "data", env={"MEMBANK_SECURITY__LOCKOUT__MAX_FAILURES": "1000000"})
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def api_schema(api_server: ServerProcess) -> OpenApiSchema:
    config = schemathesis.Config.from_dict(
        {
            # The schema's security scheme is "apiKey" (HTTP bearer).
            "auth": {"openapi": {"apiKey": {"bearer": ADMIN_KEY}}},
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        }
    )
    return schemathesis.openapi.from_url(f"{api_server.url}/schema/openapi.json", config=config)


@dataclass(frozen=True)
class _Seed:
    """A user with memories (the first one changed once), an API key and a team."""

    user: str
    memory_ids: list[str]
    key_id: str
    team: str

    @classmethod
    def create(cls, http: httpx.Client, name: str) -> _Seed:
        user, team = f"st-{name}", f"st-team-{name}"
        ids = []
        for i in range(3):
            memory = {
                "user_id": user,
                "content": f"fact {i} of {user}",
                "metadata": {"topic": "seed", "n": i},
                "agent_id": "agent",
                "session_id": "session",
            }
            ids.append(http.post("/v1/memories", json=memory).raise_for_status().json()["id"])
        change = {"content": f"fact 0 of {user}, changed"}
        http.patch(
            f"/v1/memories/{ids[0]}", params={"user_id": user}, json=change
        ).raise_for_status()
        key = http.post("/v1/admin/keys", json={"name": name, "user_id": user}).raise_for_status()
        http.put(f"/v1/admin/teams/{team}/members/{user}").raise_for_status()
        return cls(user, ids, key.json()["key"]["id"], team)

    def onto(self, case: Case, memory_id: str) -> Case:
        """The same (valid) case, about this seed's data instead of random ids."""
        path = {
            "memory_id": memory_id,
            "key_id": self.key_id,
            "team": self.team,
            "user_id": self.user,
        }
        case.path_parameters = {k: path.get(k, v) for k, v in case.path_parameters.items()}
        if "user_id" in case.query:
            case.query = {**case.query, "user_id": self.user}
        if isinstance(case.body, dict):
            case.body = self._owned(case.body)
        return case

    def _owned(self, body: dict[str, Any]) -> dict[str, Any]:
        owned = {**body, "user_id": self.user} if "user_id" in body else dict(body)
        if isinstance(owned.get("memories"), list):
            owned["memories"] = [
                {**m, "user_id": self.user} if isinstance(m, dict) else m for m in owned["memories"]
            ]
        return owned


def _known_good(seed: _Seed, dimension: int) -> list[tuple[str, dict[str, Any]]]:
    """Valid requests for the success answers that generated data seldom reaches."""
    mine = {"user_id": seed.user}
    first = {"memory_id": seed.memory_ids[0]}
    second = {"memory_id": seed.memory_ids[1]}
    key = {"key_id": seed.key_id}
    fact = {**mine, "content": "allergic to peanuts", "metadata": {"topic": "food"}}
    metadata = {"n": {"gte": 0}, "topic": {"in": ["seed"]}}
    search = {**mine, "query": "what food to avoid?", "limit": 3, "min_score": -1.0}
    search["filters"] = {"agent_id": "agent", "metadata": metadata}
    return [
        _req("POST /v1/memories", body=fact),
        _req("POST /v1/memories", body=fact),  # the exact duplicate
        _req("POST /v1/memories", body={**fact, "content": "b"}, headers={"Idempotency-Key": "k"}),
        _req("POST /v1/memories/batch", body={"memories": [{**fact, "content": "c"}, fact]}),
        _req(
            "PATCH /v1/memories/{memory_id}",
            path_parameters=first,
            query=mine,
            headers={"If-Match": '"2"'},
            body={"content": "changed again", "metadata": {"n": 9}},
        ),
        _req(
            "PATCH /v1/memories/{memory_id}",
            path_parameters=second,
            query=mine,
            headers={"If-Match": '"7"'},  # stale: 412
            body={"content": "stale"},
        ),
        _req("POST /v1/search", body=search),
        _req("POST /v1/search", body=search),  # again: the cached answer, with a cache
        _req("POST /v1/search", body={**mine, "vector": [0.1] * dimension}),
        _req("GET /v1/memories", query={**mine, "limit": 1}),
        _req("POST /v1/admin/keys", body={"name": "reader", **mine}),
        _req("POST /v1/admin/keys", body={"name": "team", "scope": "team", "team": seed.team}),
        _req("GET /v1/cache/popular", query={"k": 5}),
        _req("POST /v1/cache/warmup", body={"strategy": "eager", "top": 5}),
        _req("POST /v1/cache/warmup", body={"strategy": "lazy"}),
        _req("DELETE /v1/admin/keys/{key_id}", path_parameters=key),
        _req("DELETE /v1/admin/keys/{key_id}", path_parameters=key),  # already revoked
        _req("DELETE /v1/memories/{memory_id}", path_parameters=second, query=mine),
        _req("DELETE /v1/memories", query=mine),
    ]


def _req(label: str, **parts: Any) -> tuple[str, dict[str, Any]]:
    return label, parts


def _names_data(operation: APIOperation) -> bool:
    names = {p.name for p in [*operation.path_parameters, *operation.query]}
    return bool(names & _DATA_PARAMETERS) or operation.path in _USER_BODY_PATHS


def _kind(failure: Failure) -> str:
    """The failure's title, told apart by what varies between distinct bugs."""
    for attr in ("status_code", "scenario", "schema_path", "content_type"):
        value = getattr(failure, attr, None)
        if value is not None:
            return f"{failure.title} ({attr}={value})"
    return failure.title


class _Run:
    """Requests made and distinct failures found, over all operations."""

    def __init__(self) -> None:
        self.cases: Counter[str] = Counter()
        #: (operation, kind of failure) -> the first report of it, with its curl line.
        self.failures: dict[tuple[str, str], str] = {}

    def check(self, case: Case, headers: dict[str, str] | None = None) -> None:
        label = case.operation.label
        self.cases[label] += 1
        try:
            case.call_and_validate(headers=headers)
        except FailureGroup as group:
            for failure in group.exceptions:
                self.failures.setdefault((label, _kind(failure)), group.message)

    def fuzz(self, cases: st.SearchStrategy[Case]) -> None:
        @_SETTINGS
        @given(case=cases)
        def run(case: Case) -> None:
            self.check(case)

        run()

    def report(self) -> str:
        return "\n\n".join(f"{op}: {kind}\n{text}" for (op, kind), text in self.failures.items())


def _mutable(operation: Any) -> bool:
    """Whether negative data exists: a public route without parameters or a body
    (``/health``) has nothing to make invalid."""
    definition = operation.definition.raw
    return bool(definition.get("parameters") or definition.get("requestBody")) or bool(
        definition.get("security")
    )


def test_api_conforms_to_its_schema(api_schema: OpenApiSchema, api_server: ServerProcess) -> None:
    run = _Run()
    with api_server.client() as http:
        dimension = http.get("/v1/collection").raise_for_status().json()["dimension"]
        for label, parts in _known_good(_Seed.create(http, "known"), dimension):
            method, path = label.split(" ", 1)
            # Hand-made cases carry no generated auth: the key goes as an explicit header.
            run.check(api_schema[path][method].Case(**parts), headers=AUTH)
        for n, result in enumerate(api_schema.get_all_operations()):
            if isinstance(result, Err):
                pytest.fail(f"the schema has an operation schemathesis cannot use: {result.err()}")
            operation = result.ok()
            run.fuzz(operation.as_strategy(generation_mode=GenerationMode.POSITIVE))
            if _mutable(operation):
                run.fuzz(operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
            if _names_data(operation):
                # A seed of its own: a DELETE here must not empty what others read.
                seed = _Seed.create(http, str(n))
                ids = st.sampled_from(seed.memory_ids)
                run.fuzz(st.builds(seed.onto, operation.as_strategy(), ids))
    assert not run.failures, f"{len(run.failures)} distinct failures:\n\n{run.report()}"
    total = sum(run.cases.values())
    assert total >= MIN_CASES, f"only {total} cases: {dict(run.cases)}"
    print(f"schemathesis: {total} cases over {len(run.cases)} operations, no failures")
