"""The ASGI entry point: ``uvicorn --factory membank_server.asgi:create_app``.

Settings come from the environment (``membank serve`` passes its options there),
so every worker process builds the same app.
"""

from __future__ import annotations

from litestar import Litestar

from membank_server.api.app import create_app as _create_app
from membank_server.bootstrap import build_services
from membank_server.config import load_settings, secret_values
from membank_server.observability import PrometheusTelemetry, configure_logging
from membank_server.observability.redact import redactor

__all__ = ["create_app"]


def create_app() -> Litestar:
    settings = load_settings()
    configure_logging(settings.server.log_level, settings.server.log_json)
    redactor.add_secrets(*secret_values(settings))
    telemetry = PrometheusTelemetry()
    services = build_services(settings, telemetry=telemetry, reader=telemetry)
    return _create_app(services, settings)
