"""Lockout and rate limits on real server processes, alone and two sharing a real Redis.

Clients are told apart by X-Forwarded-For from a trusted proxy (127.0.0.1), so each
test locks out its own made-up address and never the loopback the others use.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import ADMIN_KEY, ServerProcess
from tests.support.valkey import ValkeyProcess

_ips = (f"10.9.{i // 250}.{i % 250 + 1}" for i in itertools.count())
LOCKOUT = {
    "MEMBANK_SECURITY__TRUSTED_PROXIES": '["127.0.0.1"]',
    "MEMBANK_SECURITY__LOCKOUT__MAX_FAILURES": "3",
    "MEMBANK_SECURITY__LOCKOUT__BASE_SECONDS": "1",
    "MEMBANK_SECURITY__LOCKOUT__MAX_SECONDS": "2",
}


def _as(ip: str, key: str | None = ADMIN_KEY) -> dict[str, str]:
    headers = {"X-Forwarded-For": ip}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return headers


def _new_key(http: httpx.Client, **spec: object) -> tuple[str, str]:
    r = http.post("/v1/admin/keys", json={"name": "t", **spec})
    assert r.status_code == 201, r.text
    return r.json()["key"]["id"], r.json()["secret"]


@pytest.fixture(scope="module")
def valkey(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ValkeyProcess]:
    proc = ValkeyProcess(tmp_path_factory.mktemp("valkey")).start()
    yield proc
    proc.kill()


@pytest.fixture(scope="module")
def pair(
    tmp_path_factory: pytest.TempPathFactory, valkey: ValkeyProcess
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two instances: their own stores, one key database, one Redis."""
    root: Path = tmp_path_factory.mktemp("pair")
    shared = {
        **LOCKOUT,
        "MEMBANK_SECURITY__DIR": str(root / "security"),
        "MEMBANK_SECURITY__REDIS_URL": valkey.url,
    }
    a = ServerProcess(root / "a", env=shared).start()
    b = ServerProcess(root / "b", env=shared).start()
    yield a, b
    a.stop()
    b.stop()


@pytest.fixture(scope="module")
def alone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One instance without Redis: the state is in the process."""
    proc = ServerProcess(tmp_path_factory.mktemp("alone") / "data", env=LOCKOUT).start()
    yield proc
    proc.stop()


def _lockout_doubles_and_ends(server: ServerProcess) -> None:
    ip = next(_ips)
    with server.client() as http:
        bad = _as(ip, "mbk_0123456789ab_wrong")
        codes = [http.get("/v1/whoami", headers=bad).status_code for _ in range(3)]
        assert codes == [401, 401, 401]
        locked = http.get("/v1/whoami", headers=bad)
        assert locked.status_code == 429
        assert locked.headers["retry-after"] == "1"
        assert locked.json()["error"]["code"] == "too_many_requests"
        with server.client(key=None) as anonymous:
            no_key = anonymous.get("/v1/whoami", headers={"X-Forwarded-For": ip})
        assert no_key.status_code == 429
        good = http.get("/v1/whoami", headers=_as(ip))
        assert good.status_code == 200, "a usable key is never locked out by its address"
        assert http.get("/v1/whoami", headers=_as(next(_ips), "mbk_x_y")).status_code == 401
        time.sleep(1.1)
        assert http.get("/v1/whoami", headers=bad).status_code == 401
        for _ in range(2):
            http.get("/v1/whoami", headers=bad)
        again = http.get("/v1/whoami", headers=bad)
        assert again.status_code == 429 and again.headers["retry-after"] == "2"
        time.sleep(2.1)
        for _ in range(3):
            http.get("/v1/whoami", headers=bad)
        capped = http.get("/v1/whoami", headers=bad)
        assert capped.status_code == 429 and capped.headers["retry-after"] == "2"


def test_lockout_in_process(alone: ServerProcess) -> None:
    _lockout_doubles_and_ends(alone)


def test_lockout_with_redis(pair: tuple[ServerProcess, ServerProcess]) -> None:
    _lockout_doubles_and_ends(pair[0])


def test_untrusted_forwarded_for_is_ignored(tmp_path: Path) -> None:
    env = {k: v for k, v in LOCKOUT.items() if "TRUSTED" not in k}
    proc = ServerProcess(tmp_path / "data", env=env).start()
    try:
        with proc.client() as http:
            for i in range(3):
                http.get("/v1/whoami", headers=_as(f"10.8.0.{i}", "mbk_0123456789ab_x"))
            # Each failure claimed another address; all came from 127.0.0.1.
            refused = http.get("/v1/whoami", headers=_as("10.8.1.1", "mbk_0123456789ab_x"))
            assert refused.status_code == 429
    finally:
        proc.stop()


def test_attacks_on_a_key_never_lock_its_holder_out(alone: ServerProcess) -> None:
    with alone.client() as http:
        key_id, secret = _new_key(http, scope="own", user_id="victim")
        wrong = f"mbk_{key_id}_{'x' * 43}"
        for _ in range(4):  # from many addresses: no one client is locked
            http.get("/v1/whoami", headers=_as(next(_ips), wrong))
        attempt = http.get("/v1/whoami", headers=_as(next(_ips), wrong))
        assert attempt.status_code == 429
        holder = http.get("/v1/whoami", headers=_as(next(_ips), secret))
        assert holder.status_code == 200 and holder.json()["key_id"] == key_id


def test_lockout_is_shared_by_instances(pair: tuple[ServerProcess, ServerProcess]) -> None:
    a, b = pair
    ip = next(_ips)
    with a.client() as on_a, b.client() as on_b:
        for _ in range(3):
            assert on_a.get("/v1/whoami", headers=_as(ip, "mbk_x_y")).status_code == 401
        assert on_b.get("/v1/whoami", headers=_as(ip, "mbk_x_z")).status_code == 429
        assert on_b.get("/v1/whoami", headers=_as(ip)).status_code == 200


def test_rate_limit_per_key_across_instances(pair: tuple[ServerProcess, ServerProcess]) -> None:
    a, b = pair
    with a.client() as admin:
        _, slow = _new_key(admin, scope="own", user_id="rl", rate_per_second=1, burst=6)
        _, other = _new_key(admin, scope="own", user_id="rl2", rate_per_second=1, burst=6)
    with a.client(key=slow) as on_a, b.client(key=slow) as on_b:
        answers = [(on_a if i % 2 else on_b).get("/v1/whoami") for i in range(8)]
    codes = [r.status_code for r in answers]
    assert codes.count(200) == 6 and codes[-1] == 429, codes
    limited = answers[-1]
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.headers["ratelimit-limit"] == "6"
    assert limited.headers["ratelimit-remaining"] == "0"
    assert limited.headers["ratelimit-policy"] == "6;w=6"
    assert int(answers[0].headers["ratelimit-remaining"]) == 5
    with b.client(key=other) as fresh:
        assert fresh.get("/v1/whoami").status_code == 200, "limits are per key"


def test_leased_rate_limit_stays_within_its_bound_across_instances(
    pair: tuple[ServerProcess, ServerProcess],
) -> None:
    """Burst 200 in a one-hour window; each instance leases 10 tokens at a time (the
    default lease_fraction 0.05): admitted within 2 * (10 - 1) of 200, and never more
    than 200 in the key's first window (every token spent was granted in it)."""
    a, b = pair
    with a.client() as admin:
        _, key = _new_key(admin, scope="own", user_id="lease", rate_per_second=200 / 3600,
                          burst=200)  # fmt: skip
    with a.client(key=key) as on_a, b.client(key=key) as on_b:
        # Uneven: three on A for each on B, then B alone while A holds what it leased.
        plan = [on_a, on_a, on_a, on_b] * 60 + [on_b] * 60
        codes = [http.get("/v1/whoami").status_code for http in plan]
    assert set(codes) <= {200, 429}
    admitted = codes.count(200)
    assert 200 - 2 * 9 <= admitted <= 200, admitted
    assert codes[-1] == 429


def test_concurrent_requests_of_a_key_share_one_lease(
    pair: tuple[ServerProcess, ServerProcess],
) -> None:
    """Sixteen at once on one instance: one lease request at a time, so no lease is
    taken from Redis and dropped here (which would refuse far below the limit)."""
    from concurrent.futures import ThreadPoolExecutor

    a, _ = pair
    with a.client() as admin:
        _, key = _new_key(admin, scope="own", user_id="lease2", rate_per_second=200 / 3600,
                          burst=200)  # fmt: skip
    with a.client(key=key) as http, ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(lambda _: http.get("/v1/whoami").status_code, range(260)))
    assert set(codes) <= {200, 429}
    assert 200 - 9 <= codes.count(200) <= 200, codes.count(200)


def test_rate_limited_requests_do_nothing(pair: tuple[ServerProcess, ServerProcess]) -> None:
    a, _ = pair
    user = f"rl-{uuid.uuid4().hex[:6]}"
    with a.client() as admin:
        _, secret = _new_key(admin, scope="own", user_id=user, rate_per_second=1, burst=3)
    with a.client(key=secret) as http:
        codes = [
            http.post("/v1/memories", json={"user_id": user, "content": f"m{i}"}).status_code
            for i in range(5)
        ]
    assert codes == [201, 201, 201, 429, 429]
    with a.client() as admin:
        items = admin.get("/v1/memories", params={"user_id": user}).json()["items"]
    assert sorted(m["content"] for m in items) == ["m0", "m1", "m2"]
