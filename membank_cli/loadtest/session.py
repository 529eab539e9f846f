"""One load test from start to verdict: server, seed, Locust, summary, cleanup.

Against a server it starts itself (fresh data folder, a random admin key), the
seed makes one API key per tenant with that admin key. Against ``--host`` it
uses the admin key if given (keys made, then revoked, and the tenants erased
afterwards unless ``keep_data``), else the API key for every tenant.
"""

from __future__ import annotations

import secrets
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.progress import Progress, TaskID

import loadtests
from loadtests.scenarios import Scenario
from loadtests.seed import Seed, SeedError, cleanup, seed
from membank_cli._local_server import local_server, rss_mib
from membank_cli.loadtest.report import Summary, read_summary, summary_dict
from membank_cli.loadtest.runner import LocustPlan, run_locust
from membank_cli.loadtest.slo import Slo, Verdict, verdict
from membank_cli.output import Output
from membank_server.domain.errors import MembankError

__all__ = ["LoadTest", "Outcome", "run"]


@dataclass(frozen=True)
class LoadTest:
    scenario: Scenario
    slo: Slo
    out: Path
    #: A checked target; None starts a server of our own.
    host: str | None = None
    api_key: str | None = None
    admin_key: str | None = None
    server_config: Path | None = None
    processes: int = 1
    keep_data: bool = False


@dataclass(frozen=True)
class Outcome:
    test: LoadTest
    host: str
    summary: Summary
    verdict: Verdict
    seeded: dict[str, Any] = field(default_factory=dict)
    rss_mib: dict[str, float | None] = field(default_factory=dict)
    #: (seconds into the run, MiB) every 10 s: is it flat?
    rss_samples: list[tuple[float, float | None]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        t = self.test
        return {
            "scenario": t.scenario.to_dict(),
            "host": self.host,
            "started_server": t.host is None,
            "processes": t.processes,
            "seeded": self.seeded,
            "server_rss_mib": self.rss_mib | {"every_10s": self.rss_samples},
            "slo": asdict(t.slo),
            "verdict": {
                "passed": self.verdict.passed,
                "broken": self.verdict.broken,
                "checks": [asdict(c) for c in self.verdict.checks],
            },
            **summary_dict(self.summary),
            "files": {
                "stats_csv": "locust_stats.csv",
                "history_csv": "locust_stats_history.csv",
                "failures_csv": "locust_failures.csv",
                "html": "report.html",
                "locust_log": "locust.log",
            },
        }


@contextmanager
def _target(test: LoadTest, work: Path) -> Iterator[tuple[str, int | None, str | None]]:
    """(url, server pid or None, admin key or None) of the server under test."""
    if test.host is not None:
        yield test.host, None, test.admin_key
        return
    admin_key = "membank-loadtest-" + secrets.token_urlsafe(24)
    env = {"MEMBANK_SECURITY__ADMIN_KEY": admin_key}
    if test.server_config is not None:
        env["MEMBANK_CONFIG"] = str(test.server_config.resolve())
    with local_server(work, env, quiet=True) as server:
        yield server.url, server.pid, admin_key


def _remote_rss(url: str) -> float | None:
    try:
        text = httpx.get(f"{url}/metrics", timeout=5).text
    except httpx.HTTPError:
        return None
    for line in text.splitlines():
        if line.startswith("process_resident_memory_bytes "):
            return float(line.split()[1]) / 2**20
    return None


def _seed(out: Output, test: LoadTest, url: str, admin_key: str | None) -> tuple[Seed, float]:
    s = test.scenario
    started = time.monotonic()
    with Progress(console=out.console, transient=True) as progress:
        tasks: dict[str, TaskID] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(f"seeding {stage}", total=total)
            progress.update(tasks[stage], completed=done)

        try:
            result = seed(url, s, admin_key=admin_key, api_key=test.api_key, progress=report)
        except SeedError as exc:
            raise MembankError(f"seeding failed: {exc}") from exc
    return result, time.monotonic() - started


def _cleanup(out: Output, seeded: Seed, admin_key: str | None) -> None:
    try:
        kept = cleanup(seeded, admin_key)
    except SeedError as exc:
        out.warning(f"cleaning up the seeded tenants failed: {exc}")
        return
    if kept:
        out.warning(f"left tenant {kept[0]} as it was: the key's own user is not this run's")


def run(test: LoadTest, out: Output) -> Outcome:
    """Seed, run Locust, read its files and judge them; the reports land in ``test.out``."""
    s = test.scenario
    with tempfile.TemporaryDirectory(prefix="membank-loadtest-") as tmp:
        work = Path(tmp)
        with _target(test, work) as (url, pid, admin_key):
            if admin_key is None and test.api_key is None:
                raise MembankError("--host needs --admin-key (a key per tenant) or --api-key")
            seeded, seed_seconds = _seed(out, test, url, admin_key)
            seed_file = work / "seed.json"
            seeded.save(seed_file)
            started = time.monotonic()

            def rss() -> float | None:
                return rss_mib(pid) if pid else _remote_rss(url)

            rss_start = rss()
            samples: list[tuple[float, float | None]] = []
            plan = LocustPlan(
                loadtests=Path(loadtests.__file__).parent,
                host=url,
                users=s.users,
                spawn_rate=s.spawn_rate,
                seconds=s.seconds,
                processes=test.processes,
                out=test.out,
                seed_file=seed_file,
                shape=s.shape is not None,
            )
            try:
                code = run_locust(
                    plan,
                    out.console,
                    tick=lambda: samples.append((round(time.monotonic() - started), rss())),
                )
                rss_end = rss()
            finally:
                # Interrupted or not, a server that is not ours gets its tenants back.
                if test.host is not None and not test.keep_data:
                    _cleanup(out, seeded, admin_key)
    if code != 0:
        tail = plan.log.read_text(errors="replace")[-2000:]
        raise MembankError(f"locust exited with code {code} (see {plan.log}):\n{tail}")
    summary = read_summary(plan.csv_prefix)
    return Outcome(
        test,
        url,
        summary,
        verdict(summary, test.slo),
        seeded={
            "tenants": len(seeded.tenants),
            "memories": sum(len(t.memory_ids) for t in seeded.tenants),
            "keys_made": sum(1 for t in seeded.tenants if t.key_id),
            "seconds": round(seed_seconds, 2),
        },
        rss_mib={"start": rss_start, "end": rss_end},
        rss_samples=samples,
    )
