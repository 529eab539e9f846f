"""One tuning session against a running server: measure, propose, apply one change at a time.

The session measures a window of live traffic (two reads of ``/v1/admin/totals``
``window`` seconds apart), finds the bottlenecks (:mod:`.rules`) and proposes
changes. With ``apply``, each live proposal in turn is applied through ``PUT
/v1/admin/tunables/{name}``; after ``stability`` seconds a new window is measured
and the objective compared with the window before the change: kept when it
improved by at least ``margin``, put back otherwise. A proposal that takes a
restart is recorded as such and never applied. Every step goes to the server's
tuning journal (``POST /v1/admin/tuning``), which ``membank tune history`` reads.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from membank_cli._server import checked
from membank_cli.tune.figures import OBJECTIVES, Window, better, window_of
from membank_cli.tune.rules import Proposal, Thresholds, bottlenecks, propose
from membank_server.domain.errors import MembankError

__all__ = ["Decision", "SessionReport", "Tuner"]


@dataclass(frozen=True)
class Decision:
    proposal: Proposal
    #: proposed (not applied), refused (takes a restart), kept, rolled_back, or not
    #: needed (an earlier change of the session removed its bottleneck).
    outcome: str
    before: float | None = None
    after: float | None = None


@dataclass
class SessionReport:
    session: str
    objective: str
    baseline: Window
    bottlenecks: list[str]
    decisions: list[Decision] = field(default_factory=list)
    final: Window | None = None


class Tuner:
    """Runs sessions over ``http`` (a client with an admin key); see the module docs."""

    def __init__(
        self,
        http: httpx.Client,
        *,
        objective: str = "p99",
        window: float = 30.0,
        stability: float = 10.0,
        margin: float = 0.05,
        thresholds: Thresholds | None = None,
        say: Callable[[str], None] = lambda _: None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if objective not in OBJECTIVES:
            raise MembankError(
                f"--objective must be one of {', '.join(OBJECTIVES)}, not {objective!r}"
            )
        self.http, self.objective = http, objective
        self.window, self.stability, self.margin = window, stability, margin
        self.thresholds = thresholds or Thresholds()
        self._say, self._sleep, self._clock = say, sleep, clock

    def measure(self) -> Window:
        before, started = checked(self.http.get("/v1/admin/totals")), self._clock()
        self._sleep(self.window)
        after = checked(self.http.get("/v1/admin/totals"))
        return window_of(before, after, self._clock() - started)

    def tunables(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = checked(self.http.get("/v1/admin/tunables"))
        return found

    def _record(self, session: str, action: str, **fields: Any) -> None:
        body = {"session": session, "action": action, "objective": self.objective, **fields}
        checked(self.http.post("/v1/admin/tuning", json=body))

    def _set(self, session: str, name: str, value: float, note: str) -> None:
        body = {"value": value, "session": session, "note": note}
        checked(self.http.put(f"/v1/admin/tunables/{name}", json=body))

    def run(
        self,
        *,
        apply: bool = False,
        forced: list[tuple[str, float]] | None = None,
        max_changes: int = 3,
    ) -> SessionReport:
        """One session: the baseline, the proposals, and with ``apply`` the changes."""
        session = f"tune-{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(2)}"
        tunables = self.tunables()
        self._say(f"measuring {self.window:g} s of traffic")
        base = self.measure()
        found = bottlenecks(base, self.thresholds)
        report = SessionReport(session, self.objective, base, found)
        score = base.objective(self.objective)
        self._record(session, "session", before=score, note="; ".join(found)[:500])
        proposals = (
            self._forced(forced, tunables) if forced else propose(base, tunables, self.thresholds)
        )
        for p in proposals:
            restart = "" if p.live else " (takes a restart)"
            self._record(
                session, "proposed", tunable=p.tunable, old=p.old, new=p.new,
                note=(p.reason + restart)[:500],
            )  # fmt: skip
        current, changes = base, 0
        for p in proposals:
            if not apply:
                report.decisions.append(Decision(p, "proposed"))
                continue
            if not forced and current is not base and not self._still_wanted(p, current):
                # An earlier change fixed what this one was for.
                report.decisions.append(Decision(p, "not needed"))
                continue
            if not p.live:
                self._record(session, "refused", tunable=p.tunable, old=p.old, new=p.new,
                             note="takes a restart: proposed, not applied")  # fmt: skip
                report.decisions.append(Decision(p, "refused"))
                continue
            if changes >= max_changes:
                report.decisions.append(Decision(p, "proposed"))
                continue
            changes += 1
            current = self._try(session, p, current, report)
        report.final = current
        self._record(session, "ended", before=score, after=current.objective(self.objective))
        return report

    def _still_wanted(self, p: Proposal, now: Window) -> bool:
        return any(q.tunable == p.tunable for q in propose(now, self.tunables(), self.thresholds))

    def _try(self, session: str, p: Proposal, current: Window, report: SessionReport) -> Window:
        """Apply ``p``, let it settle, measure, and keep it or put the old value back."""
        self._say(f"applying {p.tunable} {p.old:g} -> {p.new:g} ({p.reason})")
        self._set(session, p.tunable, p.new, p.reason[:500])
        self._sleep(self.stability)
        after = self.measure()
        before_score = current.objective(self.objective)
        after_score = after.objective(self.objective)
        fields = {"tunable": p.tunable, "old": p.old, "new": p.new,
                  "before": before_score, "after": after_score}  # fmt: skip
        if better(self.objective, before_score, after_score, self.margin):
            self._record(session, "kept", **fields)
            report.decisions.append(Decision(p, "kept", before_score, after_score))
            return after
        self._set(session, p.tunable, p.old, "rollback: the objective did not improve")
        self._record(session, "rolled_back", **fields,
                     note=f"{self.objective} did not improve by {self.margin:.0%}")  # fmt: skip
        report.decisions.append(Decision(p, "rolled_back", before_score, after_score))
        self._sleep(self.stability)
        return current

    @staticmethod
    def _forced(forced: list[tuple[str, float]], tunables: list[dict[str, Any]]) -> list[Proposal]:
        by_name = {t["name"]: t for t in tunables}
        proposals = []
        for name, value in forced:
            t = by_name.get(name)
            if t is None:
                raise MembankError(f"no tunable {name!r}: one of {', '.join(by_name)}")
            proposals.append(Proposal(name, t["value"], value, t["live"], "asked for with --set"))
        return proposals
