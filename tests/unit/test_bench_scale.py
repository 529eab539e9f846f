"""The scale bench's arithmetic: who holds which memory, bytes per memory, kept data sets."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from membank_cli.bench._http import Phase
from membank_cli.bench._scale import (
    BIG_TENANT,
    big_count,
    keep_load,
    kept_load,
    per_memory,
    schema_for,
    tenants,
)
from membank_server.domain.errors import MembankError


def _all(n: int, users: int, big: int, chunk: int) -> list[str]:
    rng = random.Random(1)
    return [u for s in range(0, n, chunk) for u in tenants(s, chunk, n, users, big, rng)]


def test_the_big_tenant_holds_exactly_its_share_spread_evenly() -> None:
    n, users = 10_000, 50
    who = _all(n, users, big_count(n, 0.2), chunk=1000)
    assert len(who) == n and who.count(BIG_TENANT) == 2_000
    # Evenly: every block of 1,000 memories gives it 200 of them.
    assert {who[s : s + 1000].count(BIG_TENANT) for s in range(0, n, 1000)} == {200}
    others = Counter(u for u in who if u != BIG_TENANT)
    assert set(others) == {f"user-{i}" for i in range(users)}
    assert max(others.values()) < 3 * min(others.values())  # random, but no tenant starved


def test_no_skew_means_no_big_tenant_and_chunks_never_pass_n() -> None:
    who = _all(1_050, 10, big_count(1_050, 0.0), chunk=100)
    assert len(who) == 1_050 and BIG_TENANT not in who
    assert big_count(1_000_000, 0.2) == 200_000 and big_count(7, 0.5) == 4


def test_bytes_per_memory() -> None:
    assert per_memory(2_500_000_000, 1_000_000) == 2_500.0
    assert per_memory(1_000, 3) == 333.3
    assert per_memory(None, 10) is None and per_memory(1_000, 0) is None


def test_a_kept_data_set_is_found_again_only_for_its_own_plan(tmp_path: Path) -> None:
    plan = {"n": 1_000, "users": 10, "skew": 0.2}
    assert kept_load(tmp_path, "edge", plan) is None
    phases = [Phase("ingest, vectors", 1_000, 2.0, 500.0)]
    keep_load(tmp_path, "edge", plan, phases)
    assert kept_load(tmp_path, "edge", plan) == phases
    assert kept_load(tmp_path, "pgvector", plan) is None  # per backend
    with pytest.raises(MembankError, match="another plan"):
        kept_load(tmp_path, "edge", {**plan, "skew": 0.0})


def test_a_kept_schema_is_named_after_its_folder() -> None:
    assert schema_for(Path("/tmp/Scale-1M.data"), "pgvector") == "bench_scale_1m_data_pgvector"
    assert schema_for(None, "edge").startswith("bench_") and schema_for(None, "edge").endswith(
        "_edge"
    )
