"""Locust users for membank: weighted tasks over the HTTP API, one key per tenant.

Settings come from the environment (``membank loadtest`` sets them):

* ``MEMBANK_LT_SEED``: the seed file (tenants, their keys, memory ids and
  questions; see ``seed.py``). Without it, this process seeds ``--host`` itself
  before the run (single-process Locust only), with ``MEMBANK_LT_SCENARIO``
  from ``MEMBANK_LT_SCENARIOS`` (default ``scenarios.toml``) and
  ``MEMBANK_ADMIN_KEY`` or ``MEMBANK_API_KEY``.
* ``MEMBANK_LT_PROGRESS``: a file the master (or only) process appends one JSON
  line to every second (users, current rps and p95, failures) for a live view.

Every request of a task is recorded under its endpoint's name (``ENDPOINTS``);
an answer that is not 2xx is a failure named ``HTTP <status>``, a request with
no answer at all one named ``no answer: <error>``.

    locust -f loadtests/locustfile.py --headless --host http://127.0.0.1:8080 \\
        --users 200 --spawn-rate 100 --run-time 60s
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections import Counter, deque
from functools import reduce
from pathlib import Path
from typing import Any

import gevent
from locust import FastHttpUser, events, task
from locust.env import Environment
from locust.runners import WorkerRunner
from locust.stats import CSV_STATS_INTERVAL_SEC

from loadtests.scenarios import DEFAULT_FILE, ENDPOINTS, Scenario, load_scenario
from loadtests.seed import Seed, Tenant, seed
from loadtests.texts import diary_entry, free_query

__all__ = ["MembankUser"]


#: The server answers a key's third batch in flight with 429
#: (``security.max_concurrent_batches_per_key``, 2 by default): an agent backend keeps
#: under it, and so do the users of one Locust process.
BATCHES_PER_KEY = 2


class _Run:
    """What every user of this process shares: the seed, the scenario, batches in flight."""

    seed: Seed
    scenario: Scenario
    batches: Counter[str] = Counter()


def _weighted(weights: dict[str, int]) -> list[Any]:
    """Locust's task list: each task repeated by its weight (divided by their gcd)."""
    positive = {name: w for name, w in weights.items() if w > 0}
    divisor = reduce(math.gcd, positive.values())
    return [getattr(MembankUser, name) for name, w in positive.items() for _ in range(w // divisor)]


@events.init.add_listener
def _configure(environment: Environment, **_: Any) -> None:
    path = os.environ.get("MEMBANK_LT_SEED")
    if path:
        _Run.seed = Seed.load(Path(path))
    else:
        if isinstance(environment.runner, WorkerRunner):
            raise RuntimeError(
                "workers need MEMBANK_LT_SEED: seed first (python -m loadtests.seed)"
            )
        scenario = load_scenario(
            os.environ.get("MEMBANK_LT_SCENARIO", "mixed"),
            Path(os.environ.get("MEMBANK_LT_SCENARIOS", DEFAULT_FILE)),
        )
        _Run.seed = seed(
            str(environment.host),
            scenario,
            admin_key=os.environ.get("MEMBANK_ADMIN_KEY"),
            api_key=os.environ.get("MEMBANK_API_KEY"),
        )
    s = _Run.scenario = Scenario.from_dict(_Run.seed.scenario)
    MembankUser.tasks = _weighted(s.weights)
    progress = os.environ.get("MEMBANK_LT_PROGRESS")
    if progress and not isinstance(environment.runner, WorkerRunner):
        gevent.spawn(_report_progress, environment, Path(progress))


@events.test_stop.add_listener
def _let_the_csv_catch_up(environment: Environment, **_: Any) -> None:
    # Locust rewrites the --csv files once a second but not at exit, so they would miss
    # the last second; one more round of its writer makes them agree with the HTML.
    if not isinstance(environment.runner, WorkerRunner):
        gevent.sleep(CSV_STATS_INTERVAL_SEC + 0.5)


def _report_progress(environment: Environment, path: Path) -> None:
    with path.open("a") as fh:
        while True:
            total = environment.stats.total
            line = {
                "time": time.time(),
                "users": environment.runner.user_count if environment.runner else 0,
                "rps": round(total.current_rps, 1),
                "p95_ms": total.get_current_response_time_percentile(0.95),
                "requests": total.num_requests,
                "failures": total.num_failures,
            }
            fh.write(json.dumps(line) + "\n")
            fh.flush()
            gevent.sleep(1)


class MembankUser(FastHttpUser):
    """An agent backend acting for the scenario's tenants, each with its own key.

    Users wait a random think time between requests, or, with ``rate_per_user``,
    keep that rate on a schedule whose periods vary by up to half: fixed periods
    would keep the users in the lockstep Locust spawns them in (batches), and the
    server would see bursts of hundreds of requests at once, not the rate.
    """

    def on_start(self) -> None:
        self.rng = random.Random()
        self.added: deque[tuple[Tenant, str]] = deque(maxlen=200)
        s = _Run.scenario
        mean_wait = 1 / s.rate_per_user if s.rate_per_user else sum(s.think_time) / 2
        # Start at a random point of the first period, not with the whole spawn batch.
        gevent.sleep(self.rng.uniform(0, mean_wait))
        self._next_at = time.monotonic()

    def wait_time(self) -> float:
        s = _Run.scenario
        if not s.rate_per_user:
            return self.rng.uniform(*s.think_time)
        now = time.monotonic()
        # Behind schedule (a slow answer), start again from now rather than burst to catch up.
        self._next_at = max(now, self._next_at + self.rng.uniform(0.5, 1.5) / s.rate_per_user)
        return self._next_at - now

    def _tenant(self) -> Tenant:
        return self.rng.choice(_Run.seed.tenants)

    def _call(
        self, task_name: str, method: str, path: str, tenant: Tenant, body: Any = None
    ) -> Any:
        headers = {"Authorization": f"Bearer {tenant.key}"}
        with self.client.request(
            method,
            path,
            json=body,
            headers=headers,
            name=ENDPOINTS[task_name],
            catch_response=True,
        ) as response:
            if response.status_code == 0:
                response.failure(f"no answer: {type(response.error).__name__}")
                return None
            if response.status_code >= 300:
                response.failure(f"HTTP {response.status_code}")
                return None
            response.success()
            return response.json() if response.content else None

    def _memory(self) -> tuple[Tenant, str]:
        tenant = self._tenant()
        return tenant, self.rng.choice(tenant.memory_ids)

    @task
    def search(self) -> None:
        seed, s = _Run.seed, _Run.scenario
        if seed.hot:
            index, query = self.rng.choice(seed.hot)
            tenant = seed.tenants[index]
        else:
            tenant = self._tenant()
            fresh = self.rng.random() < s.fresh_queries
            query = free_query(self.rng) if fresh else self.rng.choice(tenant.questions)
        body = {"user_id": tenant.user_id, "query": query, "limit": 5}
        self._call("search", "POST", "/v1/search", tenant, body)

    @task
    def add(self) -> None:
        tenant = self._tenant()
        body = {"user_id": tenant.user_id, "content": diary_entry(self.rng)}
        made = self._call("add", "POST", "/v1/memories", tenant, body)
        if made:
            self.added.append((tenant, made["id"]))

    @task
    def batch(self) -> None:
        tenant = self._tenant()
        while _Run.batches[tenant.user_id] >= BATCHES_PER_KEY:
            gevent.sleep(0.005)
            tenant = self._tenant()
        # No switch between the check and this line: gevent runs one user at a time.
        _Run.batches[tenant.user_id] += 1
        try:
            memories = [
                {"user_id": tenant.user_id, "content": diary_entry(self.rng)}
                for _ in range(_Run.scenario.batch_size)
            ]
            self._call("batch", "POST", "/v1/memories/batch", tenant, {"memories": memories})
        finally:
            _Run.batches[tenant.user_id] -= 1

    @task
    def get(self) -> None:
        tenant, memory = self._memory()
        self._call("get", "GET", f"/v1/memories/{memory}?user_id={tenant.user_id}", tenant)

    @task
    def list(self) -> None:
        tenant = self._tenant()
        self._call("list", "GET", f"/v1/memories?user_id={tenant.user_id}&limit=20", tenant)

    @task
    def update(self) -> None:
        tenant, memory = self._memory()
        body = {"metadata": {"checked_at": time.time(), "source": "loadtest"}}
        path = f"/v1/memories/{memory}?user_id={tenant.user_id}"
        self._call("update", "PATCH", path, tenant, body)

    @task
    def history(self) -> None:
        tenant, memory = self._memory()
        path = f"/v1/memories/{memory}/history?user_id={tenant.user_id}"
        self._call("history", "GET", path, tenant)

    @task
    def delete(self) -> None:
        if not self.added:
            self.add()
            return
        tenant, memory = self.added.popleft()
        self._call("delete", "DELETE", f"/v1/memories/{memory}?user_id={tenant.user_id}", tenant)
