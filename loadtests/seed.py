"""Seeding a scenario's data through the API, and removing it afterwards.

With an admin key, every tenant gets an API key of its own (scope ``own``), so the
load goes through the per-key authentication path as production traffic does;
with a plain key, that key serves every tenant (it must have scope ``all``, or
scope ``own`` for a one-tenant run). Memories are persona facts (see ``texts``),
written with ``POST /v1/memories/batch``. The seed, keys included, is written to
a file (mode 0600) that every Locust process reads.

Run it alone: ``python -m loadtests.seed --host URL --scenario NAME --out seed.json``
(``MEMBANK_ADMIN_KEY`` or ``MEMBANK_API_KEY`` in the environment).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from loadtests.scenarios import DEFAULT_FILE, Scenario, load_scenario
from loadtests.texts import persona

__all__ = ["Seed", "SeedError", "Tenant", "cleanup", "seed"]

#: (stage, done, total) as seeding goes.
Progress = Callable[[str, int, int], None]
_BATCH = 200


class SeedError(RuntimeError):
    """The server refused or failed a seeding request; the message names it."""


@dataclass
class Tenant:
    user_id: str
    key: str
    key_id: str | None = None
    memory_ids: list[str] = field(default_factory=list)
    questions: list[str] = field(default_factory=list)


@dataclass
class Seed:
    host: str
    run_id: str
    scenario: dict[str, Any]
    tenants: list[Tenant]
    #: (tenant index, question) pairs of a cache-hot scenario.
    hot: list[tuple[int, str]] = field(default_factory=list)

    def save(self, path: Path) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(asdict(self), fh)

    @classmethod
    def load(cls, path: Path) -> Seed:
        data = json.loads(path.read_text())
        data["tenants"] = [Tenant(**t) for t in data["tenants"]]
        data["hot"] = [(int(i), str(q)) for i, q in data["hot"]]
        return cls(**data)


class _Http:
    def __init__(self, host: str) -> None:
        self.host = host.rstrip("/")

    def __call__(self, method: str, path: str, key: str, body: Any = None) -> Any:
        request = urllib.request.Request(
            self.host + path,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode(errors="replace")
            raise SeedError(f"{method} {path} answered {exc.code}: {detail}") from exc
        except OSError as exc:
            raise SeedError(f"{method} {path} failed: {exc}") from exc
        return json.loads(raw) if raw else None


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def seed(
    host: str,
    scenario: Scenario,
    *,
    admin_key: str | None = None,
    api_key: str | None = None,
    threads: int = 8,
    progress: Progress | None = None,
) -> Seed:
    """Create the scenario's tenants (and their keys) and memories on ``host``."""
    http = _Http(host)
    report = progress or (lambda stage, done, total: None)
    run_id = secrets.token_hex(3)
    writer = admin_key or api_key
    if writer is None:
        raise SeedError("seeding needs an admin key or an API key")
    users = [f"lt-{run_id}-{i:05d}" for i in range(scenario.tenants)]
    if admin_key is None:
        me = http("GET", "/v1/whoami", writer)
        if me["scope"] == "own":
            users = [str(me["user_id"])]
        elif me["scope"] != "all":
            raise SeedError(
                f"the API key has scope {me['scope']!r}: give one with scope 'all' (any "
                "tenant) or 'own' (one tenant), or an admin key to make a key per tenant"
            )
    tenants = [Tenant(user_id=u, key=writer) for u in users]
    with ThreadPoolExecutor(threads) as pool:
        if admin_key is not None:
            _create_keys(http, admin_key, tenants, scenario, pool, report)
        _write_memories(http, writer, tenants, scenario, pool, report)
    hot: list[tuple[int, str]] = []
    for i in range(scenario.hot_queries):
        tenant = i % len(tenants)
        questions = tenants[tenant].questions
        hot.append((tenant, questions[(i // len(tenants)) % len(questions)]))
    return Seed(host, run_id, scenario.to_dict(), tenants, hot)


def _create_keys(
    http: _Http,
    admin_key: str,
    tenants: list[Tenant],
    scenario: Scenario,
    pool: ThreadPoolExecutor,
    report: Progress,
) -> None:
    rate = {"rate_per_second": scenario.key_rate, "burst": int(scenario.key_rate)}

    def create(tenant: Tenant) -> None:
        body = {"name": f"loadtest {tenant.user_id}", "scope": "own", "user_id": tenant.user_id}
        made = http("POST", "/v1/admin/keys", admin_key, body | rate)
        tenant.key, tenant.key_id = made["secret"], made["key"]["id"]

    for done, _ in enumerate(pool.map(create, tenants), 1):
        if done % 100 == 0 or done == len(tenants):
            report("tenant keys", done, len(tenants))


def _write_memories(
    http: _Http,
    key: str,
    tenants: list[Tenant],
    scenario: Scenario,
    pool: ThreadPoolExecutor,
    report: Progress,
) -> None:
    rows: list[tuple[Tenant, str]] = []
    for tenant in tenants:
        facts = persona(tenant.user_id, scenario.memories_per_tenant)
        tenant.questions = [f.question for f in facts]
        rows.extend((tenant, f.text) for f in facts)
    total = len(rows)

    def write(chunk: Sequence[tuple[Tenant, str]]) -> int:
        body = {"memories": [{"user_id": t.user_id, "content": text} for t, text in chunk]}
        answer = http("POST", "/v1/memories/batch", key, body)
        for (tenant, _), item in zip(chunk, answer["items"], strict=True):
            tenant.memory_ids.append(item["id"])
        return len(chunk)

    done = 0
    # Two batches in flight: the server embeds on its own cores, more only queue.
    with ThreadPoolExecutor(2) as writers:
        for n in writers.map(write, list(_chunks(rows, _BATCH))):
            done += n
            report("memories", done, total)


def cleanup(seed: Seed, admin_key: str | None = None, threads: int = 8) -> list[str]:
    """Erase the tenants this run made up and revoke the keys it made.

    Returns the tenants left as they are: a key's own user (scope ``own``) is a real
    tenant, whose other memories are not this run's to erase.
    """
    http = _Http(seed.host)
    ours = [t for t in seed.tenants if t.user_id.startswith(f"lt-{seed.run_id}-")]

    def erase(tenant: Tenant) -> None:
        http("DELETE", f"/v1/memories?user_id={tenant.user_id}", admin_key or tenant.key)
        if tenant.key_id is not None and admin_key is not None:
            http("POST", f"/v1/admin/keys/{tenant.key_id}/revoke", admin_key)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(erase, ours))
    return [t.user_id for t in seed.tenants if t not in ours]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Seed a load-test scenario's data.")
    parser.add_argument("--host", required=True)
    parser.add_argument("--scenario", required=True)
    parser.add_argument("--scenarios", type=Path, default=DEFAULT_FILE)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    scenario = load_scenario(args.scenario, args.scenarios)
    result = seed(
        args.host,
        scenario,
        admin_key=os.environ.get("MEMBANK_ADMIN_KEY"),
        api_key=os.environ.get("MEMBANK_API_KEY"),
        progress=lambda stage, done, total: print(f"{stage}: {done}/{total}", file=sys.stderr),
    )
    result.save(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
