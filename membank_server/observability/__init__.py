"""What the server tells its operators: Prometheus metrics and logs that cannot leak."""

from __future__ import annotations

from membank_server.observability.logs import configure_logging
from membank_server.observability.metrics import PrometheusTelemetry

__all__ = ["PrometheusTelemetry", "configure_logging"]
