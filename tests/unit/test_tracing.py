"""Tracing over fakes, exported in memory: one span per request, named by its route
template, with no user id, memory id, content, query string, header or key in it.

Needs the ``tracing`` extra (in ``dev``, which ``scripts/test`` installs): without it
this module fails to import, loudly, rather than skipping.
"""

from __future__ import annotations

import pytest
from litestar.testing import TestClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from membank_server.api.app import create_app
from membank_server.config import load_settings
from membank_server.domain.errors import ConfigError
from membank_server.observability.tracing import build_tracing
from tests.unit.fakes import FakeEmbedder, InMemoryStore
from tests.unit.services import services_over

USER = "alice@example.com"
CONTENT = "the safe code is 0451, behind the painting"
KEY = "mbk_live_0123456789abcdefghijklmnopqrstuv"
#: Nothing leaves: the exporter is in memory, and this address is never dialled.
UNUSED = "http://127.0.0.1:9/v1/traces"


def _traffic(sample: float = 1.0) -> tuple[list[ReadableSpan], str]:
    exporter = InMemorySpanExporter()
    tracing = build_tracing(UNUSED, sample, exporter=exporter)
    settings = load_settings(environ={"MEMBANK_SECURITY__AUTH": "false"})
    app = create_app(services_over(InMemoryStore(), FakeEmbedder()), settings, tracing=tracing)
    headers = {"authorization": f"Bearer {KEY}", "x-api-key": KEY}
    with TestClient(app) as http:
        created = http.post(
            "/v1/memories", json={"user_id": USER, "content": CONTENT}, headers=headers
        )
        memory_id = created.json()["id"]
        got = http.get(f"/v1/memories/{memory_id}", params={"user_id": USER}, headers=headers)
        assert got.status_code == 200
        http.post("/v1/search", json={"user_id": USER, "query": CONTENT}, headers=headers)
        assert http.get(f"/v1/nowhere/{USER}", params={"q": CONTENT}).status_code == 404
        bad = http.post("/v1/memories", json={"user_id": USER, "content": 7}, headers=headers)
        assert bad.status_code == 422
        http.get("/health")
    tracing.shutdown()  # flushes the batch
    return list(exporter.get_finished_spans()), memory_id


def test_spans_are_named_by_route_template_with_status() -> None:
    spans, _ = _traffic()
    seen = [(s.name, (s.attributes or {}).get("http.status_code")) for s in spans]
    assert seen == [
        ("POST /v1/memories", 201),
        ("GET /v1/memories/{memory_id}", 200),
        ("POST /v1/search", 200),
        ("GET", 404),  # unrouted: neither the path nor a template
        ("POST /v1/memories", 422),
    ]  # /health is not traced
    for span in spans:
        assert (span.attributes or {})["http.route"] in {
            "/v1/memories",
            "/v1/memories/{memory_id}",
            "/v1/search",
            "unmatched route",
        }


def test_spans_hold_no_user_data_query_header_or_key() -> None:
    spans, memory_id = _traffic()
    text = repr(
        [(s.name, dict(s.attributes or {}), s.events, s.resource.attributes) for s in spans]
    )
    for secret in (USER, "alice", CONTENT, "safe code", memory_id, KEY, "nowhere", "q="):
        assert secret not in text, secret
    assert not any(".header." in key for s in spans for key in (s.attributes or {}))


def test_a_tiny_sample_ratio_keeps_no_span() -> None:
    spans, _ = _traffic(sample=1e-9)
    assert spans == []


def test_tracing_is_off_by_default_and_checked_at_load() -> None:
    assert load_settings(environ={}).observe.tracing is False
    for name, value in (("TRACING_SAMPLE", "0"), ("TRACING_SAMPLE", "1.5")):
        with pytest.raises(ConfigError, match=r"observe\.tracing_sample"):
            load_settings(environ={f"MEMBANK_OBSERVE__{name}": value})
    with pytest.raises(ConfigError, match=r"observe\.tracing_endpoint"):
        load_settings(environ={"MEMBANK_OBSERVE__TRACING_ENDPOINT": "127.0.0.1:4318"})
