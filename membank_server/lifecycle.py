"""How this process's server run ended: what ``membank serve`` turns into an exit status.

The HTTP layer records here what a clean shutdown does not have: requests still
running when the grace period ended (answered ``shutting_down``), and a lifespan
shutdown that failed (a store that could not close). One process, one record.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ShutdownReport", "shutdown_report"]


@dataclass
class ShutdownReport:
    cancelled_requests: int = 0
    failed: str | None = None

    @property
    def clean(self) -> bool:
        return self.cancelled_requests == 0 and self.failed is None


#: This process's report.
shutdown_report = ShutdownReport()
