"""Property: over random users, filters and queries, a search never returns another
tenant's memory, whoever's key asks and for whichever user_id.

Runs against a real server (embedded store, the real embedder for text queries).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.server import ServerProcess

USERS = [f"p-{uuid.uuid4().hex[:6]}-{i}" for i in range(4)]
WORDS = ["tea", "coffee", "Lisbon", "peanuts", "Toyota", "piano", "marathon", "cats"]
AGENTS = ["a1", "a2"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    proc = ServerProcess(tmp_path_factory.mktemp("prop") / "data").start()
    with proc.client() as admin:
        keys, owned = {}, {}
        for n, user in enumerate(USERS):
            r = admin.post("/v1/admin/keys", json={"name": user, "scope": "own", "user_id": user})
            keys[user] = r.json()["secret"]
            batch = [
                {
                    "user_id": user,
                    "content": f"{user} likes {w} ({i})",
                    "agent_id": AGENTS[i % 2],
                    "metadata": {"topic": w, "rank": i},
                }
                for i, w in enumerate(WORDS)
            ]
            made = admin.post("/v1/memories/batch", json={"memories": batch})
            assert made.status_code == 201, made.text
            owned[user] = {m["id"] for m in made.json()["items"]}
            assert n == USERS.index(user)
        team_key = admin.post(
            "/v1/admin/keys", json={"name": "team", "scope": "team", "team": "t"}
        ).json()["secret"]
        for user in USERS[:2]:
            admin.put(f"/v1/admin/teams/t/members/{user}")
        keys["team"] = team_key
    yield {"server": proc, "keys": keys, "owned": owned}
    proc.stop()


filters = st.fixed_dictionaries(
    {},
    optional={
        "agent_id": st.sampled_from(AGENTS),
        "metadata": st.one_of(
            st.fixed_dictionaries({"topic": st.sampled_from(WORDS)}),
            st.fixed_dictionaries(
                {"topic": st.fixed_dictionaries({"in": st.lists(st.sampled_from(WORDS))})}
            ),
            st.fixed_dictionaries(
                {
                    "rank": st.fixed_dictionaries(
                        {"gte": st.integers(0, 8)}, optional={"lte": st.integers(0, 8)}
                    )
                }
            ),
        ),
    },
)


@settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    asker=st.sampled_from([*USERS, "team"]),
    target=st.sampled_from(USERS),
    query=st.lists(st.sampled_from(WORDS), min_size=1, max_size=3).map(" ".join),
    flt=filters,
    limit=st.integers(1, 20),
    mode=st.sampled_from([None, "dense", "lexical", "hybrid"]),
    fusion=st.sampled_from([None, "rrf", "weighted"]),
)
def test_search_never_returns_another_tenants_memory(
    world: dict[str, Any],
    asker: str,
    target: str,
    query: str,
    flt: dict[str, Any],
    limit: int,
    mode: str | None,
    fusion: str | None,
) -> None:
    server: ServerProcess = world["server"]
    allowed = {target} if asker == target or (asker == "team" and target in USERS[:2]) else set()
    body: dict[str, Any] = {"user_id": target, "query": query, "limit": limit}
    if flt:
        body["filters"] = flt
    # Every search mode: each user's memories hold the same words, so a lexical index
    # that crossed tenants would show here.
    body |= {k: v for k, v in (("mode", mode), ("fusion", fusion)) if v is not None}
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {world['keys'][asker]}"}
    ) as http:
        r = http.post("/v1/search", json=body)
    if not allowed:
        assert r.status_code == 404, r.text
        return
    assert r.status_code == 200, r.text
    for hit in r.json()["results"]:
        memory = hit["memory"]
        assert memory["user_id"] == target
        assert memory["id"] in world["owned"][target]
        assert memory["content"].startswith(f"{target} ")
