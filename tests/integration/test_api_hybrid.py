"""Search modes over HTTP with the real embedder: exact terms dense search misses are
found by lexical and hybrid search; explain, occurred_at, the cache and bad input."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

_FIXERS = ["Oluwaseun", "Tadeusz", "Siobhan", "Anneliese", "Bartholomew", "Xiomara", "Radomir"]
_JOBS = [
    "fixed the boiler", "repaired the sink", "painted the hallway", "cleared the gutters",
    "mended the fence", "rewired the lamp", "tiled the bathroom", "serviced the car",
]  # fmt: skip
_CODES = ["4471", "8812", "5230", "1964", "7309", "2648", "9157", "3086"]
_PLACES = [
    "bike shed", "office", "gym", "mum's flat", "garage", "storage unit", "school gate",
    "allotment",
]  # fmt: skip
_DATES = [
    "2025-03-14", "2025-04-02", "2025-05-19", "2025-06-07", "2025-07-23", "2025-08-11",
    "2025-09-30", "2025-10-05",
]  # fmt: skip
_EVENTS = [
    "the vet appointment", "the dentist check-up", "the MOT test", "the boiler service",
    "the parents' evening", "the eye test", "the flu jab", "the smear test",
]  # fmt: skip
_NAMES = [
    "Zbigniew",
    "Oluwakemi",
    "Thibaut",
    "Ingrid",
    "Wojciech",
    "Anselm",
    "Fionnuala",
    "Kwabena",
]


def _memories() -> list[str]:
    """Near neighbours of each other: only a name, a number or a date tells them apart."""
    return [
        *(f"{n} {j} last week" for n, j in zip([*_FIXERS, "Ngozi"], _JOBS, strict=True)),
        *(f"The door code for the {p} is {c}" for p, c in zip(_PLACES, _CODES, strict=True)),
        *(f"{e.capitalize()} is on {d}" for e, d in zip(_EVENTS, _DATES, strict=True)),
        *(
            "The quarterly planning meeting ran long again, the budget for the new warehouse"
            " was cut twice, marketing wants another campaign before summer, and"
            f" {n} from finance asked for the forecast by Monday"
            for n in _NAMES
        ),
    ]


@pytest.fixture(scope="module")
def user(http: httpx.Client) -> str:
    user_id = f"hy-{uuid.uuid4().hex[:8]}"
    body = {"memories": [{"user_id": user_id, "content": c} for c in _memories()]}
    assert http.post("/v1/memories/batch", json=body).status_code == 201
    return user_id


def _search(http: httpx.Client, user_id: str, query: str, **extra: Any) -> dict[str, Any]:
    r = http.post("/v1/search", json={"user_id": user_id, "query": query, **extra})
    assert r.status_code == 200, r.text
    found: dict[str, Any] = r.json()
    return found


def _rank(http: httpx.Client, user_id: str, query: str, target: str, mode: str) -> int | None:
    results = _search(http, user_id, query, mode=mode, limit=10)["results"]
    contents = [h["memory"]["content"] for h in results]
    return contents.index(target) + 1 if target in contents else None


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("Oluwakemi", "Oluwakemi from finance"),  # a rare name
        ("Wojciech", "Wojciech from finance"),
        ("the code 9157", "is 9157"),  # a number
        ("what is on 2025-07-23?", "on 2025-07-23"),  # a date string
    ],
)
def test_exact_terms_dense_misses_are_found_by_lexical_and_hybrid(
    http: httpx.Client, user: str, query: str, needle: str
) -> None:
    (target,) = [m for m in _memories() if needle in m]
    dense = _rank(http, user, query, target, "dense")
    assert dense != 1, f"dense search already ranks it first: {query!r} is no test"
    assert _rank(http, user, query, target, "lexical") == 1
    assert _rank(http, user, query, target, "hybrid") == 1


def test_explain_says_which_retrievers_found_each_hit(http: httpx.Client, user: str) -> None:
    found = _search(http, user, "door code 9157", explain=True, limit=5)
    first = found["results"][0]
    assert first["memory"]["content"].endswith("9157")
    assert set(first["ranks"]) == {"dense", "lexical"} and first["ranks"]["lexical"] == 1
    assert all(set(h["ranks"]) <= {"dense", "lexical"} and h["ranks"] for h in found["results"])
    plain = _search(http, user, "door code 9157", limit=5)
    assert all("ranks" not in h for h in plain["results"])
    rrf = _search(http, user, "door code 9157", fusion="rrf", rrf_k=10, explain=True)
    assert rrf["results"][0]["ranks"]["lexical"] == 1


def test_the_cache_keeps_modes_apart(http: httpx.Client, user: str) -> None:
    query = f"which code opens the gym {uuid.uuid4().hex[:6]}"
    first = http.post("/v1/search", json={"user_id": user, "query": query, "mode": "lexical"})
    again = http.post("/v1/search", json={"user_id": user, "query": query, "mode": "lexical"})
    dense = http.post("/v1/search", json={"user_id": user, "query": query, "mode": "dense"})
    assert first.headers["X-Membank-Cache"] in ("miss", "off")
    if first.headers["X-Membank-Cache"] == "miss":
        assert again.headers["X-Membank-Cache"] == "hit"
        assert dense.headers["X-Membank-Cache"] == "miss"
    assert again.json()["results"] == first.json()["results"]
    assert dense.json()["results"] != first.json()["results"]


def test_occurred_at_is_written_returned_and_filtered(http: httpx.Client) -> None:
    user_id = f"oc-{uuid.uuid4().hex[:8]}"
    said = [("2023-03-01T10:00:00Z", "we booked the cabin in Tromsø"), (None, "cabin keys")]
    body = {
        "memories": [
            {"user_id": user_id, "content": c, **({"occurred_at": at} if at else {})}
            for at, c in said
        ]
    }
    made = http.post("/v1/memories/batch", json=body)
    assert made.status_code == 201, made.text
    items = made.json()["items"]
    assert items[0]["occurred_at"].startswith("2023-03-01T10:00:00")
    assert items[1]["occurred_at"] is None
    got = http.get(f"/v1/memories/{items[0]['id']}", params={"user_id": user_id}).json()
    assert got["occurred_at"] == items[0]["occurred_at"]
    # An update keeps it unless it says otherwise.
    patched = http.patch(
        f"/v1/memories/{items[0]['id']}",
        params={"user_id": user_id},
        json={"content": "we booked the cabin in Tromsø for March"},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["occurred_at"] == items[0]["occurred_at"]
    for flt, expected in (
        ({"occurred_before": "2024-01-01T00:00:00Z"}, [items[0]["id"]]),
        ({"occurred_after": "2024-01-01T00:00:00Z"}, []),
    ):
        for mode in ("dense", "lexical", "hybrid"):
            found = _search(http, user_id, "cabin", mode=mode, filters=flt)
            assert [h["memory"]["id"] for h in found["results"]] == expected, (mode, flt)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"mode": "semantic"}, "mode"),
        ({"fusion": "max"}, "fusion"),
        ({"rrf_k": 0}, "rrf_k"),
        ({"dense_depth": 5000}, "dense_depth"),
        ({"dense_weight": 1.5}, "dense_weight"),
        ({"rerank": True}, "rerank"),
    ],
)
def test_bad_search_settings_are_a_clear_4xx(
    http: httpx.Client, user: str, body: dict[str, Any], field: str
) -> None:
    r = http.post("/v1/search", json={"user_id": user, "query": "code", **body})
    # A reranker this server lacks is a feature not enabled: 404 not_enabled.
    assert r.status_code in ((404,) if field == "rerank" else (400, 422)), r.text
    assert r.json()["error"]["details"]["field"] == field


def test_lexical_needs_text_and_a_vector_search_is_dense(http: httpx.Client, user: str) -> None:
    vector = [1.0] + [0.0] * 383
    r = http.post("/v1/search", json={"user_id": user, "vector": vector, "mode": "lexical"})
    assert r.status_code == 422 and "text" in r.json()["error"]["message"]
    r = http.post("/v1/search", json={"user_id": user, "vector": vector, "explain": True})
    assert r.status_code == 200
    assert all(set(h["ranks"]) == {"dense"} for h in r.json()["results"])
    bad = {"user_id": user, "query": "x", "occurred_at": "2024-01-01T00:00:00Z"}
    assert http.post("/v1/search", json=bad).status_code in (400, 422)
    naive = {"user_id": user, "content": "naive time", "occurred_at": "2024-01-01T00:00:00"}
    r = http.post("/v1/memories", json=naive)
    assert r.status_code in (400, 422) and r.json()["error"]["details"]["field"] == "occurred_at"
