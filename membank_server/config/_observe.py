"""Settings of what the server measures of itself: the history, the SLO targets, tunables."""

from __future__ import annotations

from typing import Literal

import msgspec

from membank_server.config._base import Section
from membank_server.domain.errors import ConfigError, InvalidInput
from membank_server.domain.slo import Slo
from membank_server.domain.tuning import Bounds

__all__ = ["ObserveSettings", "SloSettings", "check_observe"]

_DESIGN = Slo()


class SloSettings(Section):
    """The targets ``GET /v1/admin/sli`` judges against (the design's by default)."""

    availability: float = _DESIGN.availability
    error_rate: float = _DESIGN.error_rate
    p95_ms: float = _DESIGN.p95_ms
    p99_ms: float = _DESIGN.p99_ms
    min_rps: float = _DESIGN.min_rps

    def to_domain(self) -> Slo:
        return Slo().merged(msgspec.structs.asdict(self), "setting observe.slo")


class ObserveSettings(Section):
    #: Seconds between two samples of the server's own figures.
    sample_seconds: float = 60.0
    #: Samples older than this are forgotten.
    retention_days: float = 120.0
    #: Where samples go: PostgreSQL when storage.postgres.dsn is set ("auto"), else a
    #: SQLite file (``history_path``, by default under storage.edge.path).
    history: Literal["auto", "sqlite", "postgres"] = "auto"
    history_path: str | None = None
    #: Tenants shown by name (pseudonymised) in the per-tenant metrics: the largest only.
    top_tenants: int = 10
    #: Seconds between two counts of users and of the largest tenants (a scan of an index).
    census_seconds: float = 300.0
    slo: SloSettings = msgspec.field(default_factory=SloSettings)
    #: OpenTelemetry traces, one span per request (needs the ``tracing`` extra).
    tracing: bool = False
    #: An OTLP/HTTP collector's traces endpoint.
    tracing_endpoint: str = "http://127.0.0.1:4318/v1/traces"
    #: Share of requests traced.
    tracing_sample: float = 1.0
    #: Tuner bounds by tunable name: [minimum, maximum, step] (see GET /v1/admin/tunables).
    tunables: dict[str, list[float]] = msgspec.field(default_factory=dict)

    def bounds(self, name: str, default: Bounds) -> Bounds:
        given = self.tunables.get(name)
        return default if given is None else Bounds(*given)


def check_observe(observe: ObserveSettings, pg_dsn: str | None) -> None:
    """The rules of ``[observe]`` (each error one line naming the setting)."""
    for name, value in (
        ("sample_seconds", observe.sample_seconds),
        ("retention_days", observe.retention_days),
        ("top_tenants", observe.top_tenants),
        ("census_seconds", observe.census_seconds),
    ):
        if value <= 0:
            raise ConfigError(f"setting observe.{name} must be positive, got {value}")
    if not 0 < observe.tracing_sample <= 1:
        raise ConfigError(
            f"setting observe.tracing_sample must be in (0, 1], got {observe.tracing_sample}"
        )
    if not observe.tracing_endpoint.startswith(("http://", "https://")):
        raise ConfigError(
            f"setting observe.tracing_endpoint must be an http(s) URL, got "
            f"{observe.tracing_endpoint!r}"
        )
    if observe.history == "postgres" and not pg_dsn:
        raise ConfigError("setting observe.history=postgres needs storage.postgres.dsn")
    observe.slo.to_domain()
    for name, given in observe.tunables.items():
        if len(given) != 3:
            raise ConfigError(
                f"setting observe.tunables.{name} must be [minimum, maximum, step], got {given}"
            )
        try:
            Bounds(*given)
        except InvalidInput as exc:
            raise ConfigError(f"setting observe.tunables.{name}: {exc.message}") from exc
