"""Optional tracing: spans reach an OTLP/HTTP receiver and hold no user data.

A small receiver on 127.0.0.1 takes what the server exports to ``/v1/traces`` and
decodes it with OpenTelemetry's own protobuf classes. The spans must name the
route templates, and nothing in them (names, attributes, events) may hold a user
id, a memory id, memory content, a query or the key.

Needs the ``tracing`` extra (in ``dev``, which ``scripts/test`` installs): without it
this module fails to import, loudly, rather than skipping.
"""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)

from tests.support.loopback import serve_on_loopback
from tests.support.server import ADMIN_KEY, ServerProcess

USER = "alice@example.com"
CONTENT = "the safe code is 0451, behind the painting"


class _Receiver(BaseHTTPRequestHandler):
    bodies: list[bytes] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", 0))
        type(self).bodies.append(self.rfile.read(length))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def receiver() -> Iterator[str]:
    _Receiver.bodies = []
    with serve_on_loopback(_Receiver) as url:
        yield f"{url}/v1/traces"


def test_spans_name_routes_and_hold_no_user_data(receiver: str, tmp_path: Path) -> None:
    server = ServerProcess(
        tmp_path / "data",
        env={"MEMBANK_OBSERVE__TRACING": "true", "MEMBANK_OBSERVE__TRACING_ENDPOINT": receiver},
    ).start()
    try:
        with server.client() as http:
            created = http.post("/v1/memories", json={"user_id": USER, "content": CONTENT}).json()
            memory_id = created["id"]
            assert http.get(f"/v1/memories/{memory_id}", params={"user_id": USER}).is_success
            http.post("/v1/search", json={"user_id": USER, "query": "where is the safe code"})
    finally:
        assert server.stop() == 0  # the last spans are flushed at shutdown
    spans = []
    for body in _Receiver.bodies:
        request = ExportTraceServiceRequest.FromString(body)
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                spans.extend(scope.spans)
    names = {s.name for s in spans}
    assert {"POST /v1/memories", "POST /v1/search"} <= names
    assert any(n.startswith("GET /v1/memories/{memory_id") for n in names), names
    everything = b"".join(_Receiver.bodies)
    for secret in (USER, "alice", CONTENT, "safe code", memory_id, ADMIN_KEY):
        assert secret.encode() not in everything, secret
