"""Hostile input against a real server: every malformed request is a 4xx, nothing leaks.

A corpus of requests a hostile or careless client sends (wrong types at every level,
invalid UTF-8, deep nesting, duplicate keys, NUL characters, numbers out of range,
bad query strings, path parameters and headers, oversized and too many headers)
must each get a 4xx with the uniform ``{"error": {...}}`` body. Then unexpected
errors are injected (an exception quoting a memory's content, and one quoting a
bearer token on the security path), and a shutdown cancels requests under load.
Afterwards the server's whole log must hold no API key, no bearer header and no
memory content, while still logging each unexpected error once, with its traceback.
"""

from __future__ import annotations

import concurrent.futures
import json
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.support.server import ADMIN_KEY, AUTH, ServerProcess

SECRET = f"SECRET-CONTENT-{uuid.uuid4().hex}"
MEMORY = "6f1c9a52-3a77-4c55-9d3e-2b0c7a9e8d41"


@dataclass
class Case:
    name: str
    method: str
    path: str
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    statuses: tuple[int, ...] = (400, 422)


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


def _memory(**fields: object) -> dict[str, object]:
    return {"user_id": "mallory", "content": f"{SECRET} hostile", **fields}


def _deep(depth: int, leaf: str = "1", open_: str = '{"a":', close: str = "}") -> str:
    return open_ * depth + leaf + close * depth


CORPUS = [
    # the body of a batch, wrong at the top
    Case("batch object", "POST", "/v1/memories/batch", _json({"memories": {}}), statuses=(422,)),
    Case("batch string", "POST", "/v1/memories/batch", _json({"memories": SECRET}), statuses=(422,)),
    Case("batch null", "POST", "/v1/memories/batch", _json({"memories": None}), statuses=(422,)),
    Case("batch item null", "POST", "/v1/memories/batch", _json({"memories": [None]}), statuses=(422,)),
    Case("batch empty", "POST", "/v1/memories/batch", _json({"memories": []}), statuses=(422,)),
    Case("top-level array", "POST", "/v1/memories", _json([_memory()]), statuses=(422,)),
    Case("top-level string", "POST", "/v1/memories", _json(SECRET), statuses=(422,)),
    # wrong types deeper down
    Case("content number", "POST", "/v1/memories", _json(_memory(content=42)), statuses=(422,)),
    Case("metadata list", "POST", "/v1/memories", _json(_memory(metadata=[SECRET])), statuses=(422,)),
    Case("user_id number", "POST", "/v1/memories", _json(_memory(user_id=7)), statuses=(422,)),
    Case("expires_at number", "POST", "/v1/memories", _json(_memory(expires_at=0)), statuses=(422,)),
    Case("expires_at junk", "POST", "/v1/memories", _json(_memory(expires_at=SECRET)), statuses=(422,)),
    Case("expires_at naive", "POST", "/v1/memories", _json(_memory(expires_at="2031-01-01T00:00:00")), statuses=(422,)),
    Case("id not uuid", "POST", "/v1/memories", _json(_memory(id=SECRET)), statuses=(422,)),
    Case("vector strings", "POST", "/v1/memories", _json(_memory(vector=["a"] * 384)), statuses=(422,)),
    Case("vector short", "POST", "/v1/memories", _json(_memory(vector=[0.1] * 3)), statuses=(422,)),
    Case("vector zeros", "POST", "/v1/memories", _json(_memory(vector=[0.0] * 384)), statuses=(422,)),
    Case("vector huge", "POST", "/v1/memories", _json(_memory(vector=[1e300] * 384)), statuses=(422,)),
    Case("number out of range", "POST", "/v1/search", b'{"user_id":"mallory","query":"x","limit":1e400}'),
    Case("if-match too big", "PATCH", f"/v1/memories/{MEMORY}?user_id=mallory", _json({"content": "x"}), headers={"If-Match": '"' + "9" * 40 + '"'}, statuses=(400, 422)),
    Case("limit string", "POST", "/v1/search", _json({"user_id": "mallory", "query": "x", "limit": "10"}), statuses=(422,)),
    Case("limit negative", "POST", "/v1/search", _json({"user_id": "mallory", "query": "x", "limit": -1}), statuses=(422,)),
    Case("query and vector", "POST", "/v1/search", _json({"user_id": "mallory", "query": "x", "vector": [0.1] * 384}), statuses=(422,)),
    Case("filters string", "POST", "/v1/search", _json({"user_id": "mallory", "query": "x", "filters": SECRET}), statuses=(422,)),
    Case("filter key bad", "POST", "/v1/search", _json({"user_id": "mallory", "query": "x", "filters": {"metadata": {"a b": 1}}}), statuses=(422,)),
    Case("unknown field", "POST", "/v1/memories", _json(_memory(owner="root")), statuses=(422,)),
    Case("patch user_id", "PATCH", f"/v1/memories/{MEMORY}?user_id=mallory", _json({"user_id": "eve"}), statuses=(404, 422)),
    # encodings and syntax
    Case("invalid utf-8", "POST", "/v1/memories", b'{"user_id":"mallory","content":"\xff\xfe' + SECRET.encode() + b'"}', statuses=(400,)),
    Case("not json", "POST", "/v1/memories", SECRET.encode(), statuses=(400,)),
    Case("truncated json", "POST", "/v1/memories", _json(_memory())[:-3], statuses=(400,)),
    Case("empty body", "POST", "/v1/memories", b" ", statuses=(400,)),
    Case("nan literal", "POST", "/v1/search", b'{"user_id":"mallory","query":"x","min_score":NaN}', statuses=(400,)),
    Case("duplicate keys", "POST", "/v1/memories", b'{"user_id":"mallory","user_id":"victim","content":"' + SECRET.encode() + b'"}', statuses=(400,)),
    Case("nested duplicate", "POST", "/v1/memories", b'{"user_id":"mallory","content":"x","metadata":{"a":1,"a":2}}', statuses=(400,)),
    Case("nul in content", "POST", "/v1/memories", _json(_memory(content=f"{SECRET}\u0000")), statuses=(422,)),
    Case("nul in metadata key", "POST", "/v1/memories", _json(_memory(metadata={"a\u0000": 1})), statuses=(422,)),
    Case("5000-deep metadata", "POST", "/v1/memories", ('{"user_id":"mallory","content":"x","metadata":' + _deep(5000) + "}").encode(), statuses=(400,)),
    Case("10000-deep array", "POST", "/v1/memories/batch", ('{"memories":' + _deep(10000, "1", "[", "]") + "}").encode(), statuses=(400,)),
    Case("3000-deep filter", "POST", "/v1/search", ('{"user_id":"mallory","query":"x","filters":{"metadata":' + _deep(3000) + "}}").encode(), statuses=(400,)),
    Case("blank content", "POST", "/v1/memories", _json(_memory(content=" \n\t ")), statuses=(422,)),
    Case("content too long", "POST", "/v1/memories", _json(_memory(content="x" * 9000)), statuses=(422,)),
    # media types
    Case("form body", "POST", "/v1/memories", b"user_id=mallory", headers={"content-type": "application/x-www-form-urlencoded"}, statuses=(415,)),
    # query strings and path parameters
    Case("user_id newline", "GET", "/v1/memories?user_id=bob%0A", statuses=(422,)),
    Case("user_id too long", "GET", "/v1/memories?user_id=" + "a" * 200, statuses=(422,)),
    Case("user_id missing", "GET", "/v1/memories", statuses=(400, 422)),
    Case("limit junk", "GET", "/v1/memories?user_id=mallory&limit=ten", statuses=(400, 422)),
    Case("limit zero", "GET", "/v1/memories?user_id=mallory&limit=0", statuses=(400, 422)),
    Case("cursor junk", "GET", f"/v1/memories?user_id=mallory&cursor={SECRET}", statuses=(422,)),
    Case("bad utf-8 query", "GET", "/v1/memories?user_id=%ff%fe", statuses=(400, 422)),
    Case("path not uuid", "GET", f"/v1/memories/{SECRET}?user_id=mallory", statuses=(404,)),
    Case("audit since number", "GET", "/v1/admin/audit?since=0.5", statuses=(422,)),
    Case("key id bad", "GET", "/v1/admin/keys/a%20b", statuses=(400, 404, 422)),
    # headers
    Case("if-match junk", "PATCH", f"/v1/memories/{MEMORY}?user_id=mallory", _json({"content": "x"}), headers={"If-Match": "yesterday"}, statuses=(400, 422)),
    Case("idempotency key too long", "POST", "/v1/memories", _json(_memory()), headers={"Idempotency-Key": "k" * 300}, statuses=(400, 422)),
]  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root: Path = tmp_path_factory.mktemp("hostile")
    proc = ServerProcess(
        root / "data",
        env={"MEMBANK_SERVER__SHUTDOWN_TIMEOUT": "1"},
        module="tests.support.faulty_serve",
    )
    proc.start()
    yield proc
    proc.stop()


def _raw(server: ServerProcess, head: bytes) -> bytes:
    """Send a raw request (httpx refuses to build some of these) and read the answer."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _is_error_body(text: bytes | str) -> bool:
    try:
        body = json.loads(text)
    except ValueError:
        return False
    return isinstance(body, dict) and isinstance(body.get("error", {}).get("code"), str)


def test_every_hostile_request_is_a_4xx_with_the_error_body(server: ServerProcess) -> None:
    wrong = []
    with server.client() as http:
        for case in CORPUS:
            headers = {"content-type": "application/json", **case.headers}
            r = http.request(case.method, case.path, content=case.body, headers=headers)
            if r.status_code not in case.statuses or not _is_error_body(r.content):
                wrong.append(f"{case.name}: {r.status_code} {r.text[:200]}")
            if SECRET in r.text:
                wrong.append(f"{case.name}: the answer echoes the body")
    assert not wrong, "\n".join(wrong)


def test_oversized_and_too_many_headers_are_refused_before_anything_else(
    server: ServerProcess,
) -> None:
    big = _raw(server, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(150))
    lots = _raw(server, b"GET /health HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
    for answer in (big, lots):
        status, _, body = answer.partition(b"\r\n\r\n")
        assert status.startswith(b"HTTP/1.1 431"), answer[:200]
        assert _is_error_body(body)
    # The server is still fine afterwards.
    assert httpx.get(f"{server.url}/health").status_code == 200


def test_options_names_every_method_of_the_path(server: ServerProcess) -> None:
    with server.client() as http:
        allow = http.options("/v1/memories").headers["allow"]
        by_id = http.options(f"/v1/memories/{MEMORY}").headers["allow"]
    assert allow == "DELETE, GET, OPTIONS, POST"
    assert by_id == "DELETE, GET, OPTIONS, PATCH"


def test_injected_errors_are_logged_once_and_leak_nothing(server: ServerProcess) -> None:
    token = f"mbk_faultyfaulty_{uuid.uuid4().hex}"
    with server.client() as http:
        for i in range(3):
            r = http.post(
                "/v1/memories", json={"user_id": "mallory", "content": f"INJECT-FAULT {SECRET} {i}"}
            )
            assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"
            assert SECRET not in r.text and r.json()["error"]["details"]["request_id"]
    with server.client(token) as http:
        r = http.get("/v1/whoami")
    assert r.status_code == 500 and _is_error_body(r.content) and token not in r.text
    log = server.log.read_text()
    # Each once: the exception's last line (the traceback also quotes the raise).
    assert log.count("RuntimeError: injected failure while storing") == 3
    assert log.count("RuntimeError: injected failure authenticating") == 1
    assert log.count("unexpected error in POST /v1/memories") == 3
    assert "Traceback" in log and "RuntimeError" in log
    _assert_clean(log, token)


def test_a_shutdown_that_cancels_requests_answers_json_and_leaks_nothing(
    tmp_path: Path,
) -> None:
    proc = ServerProcess(
        tmp_path / "data",
        env={
            "MEMBANK_SERVER__SHUTDOWN_TIMEOUT": "1",
            "MEMBANK_SECURITY__MAX_CONCURRENT_BATCHES_PER_KEY": "8",
        },
        module="tests.support.faulty_serve",
    ).start()
    # Long texts: each batch takes the embedder several seconds on two cores.
    long = " ".join(["the quick brown fox jumps over the lazy dog"] * 60)
    batch = {
        "memories": [{"user_id": "mallory", "content": f"{SECRET} {i} {long}"} for i in range(256)]
    }

    def post() -> httpx.Response | Exception:
        try:
            return httpx.post(f"{proc.url}/v1/memories/batch", json=batch, headers=AUTH, timeout=60)
        except httpx.TransportError as exc:
            return exc

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(post) for _ in range(4)]
        time.sleep(3.0)  # all four are embedding now
        status = proc.stop()
        answers = [f.result() for f in futures]
    responses = [a for a in answers if isinstance(a, httpx.Response)]
    assert responses, answers
    for r in responses:
        assert _is_error_body(r.content) or r.status_code in (200, 201), r.text[:200]
        assert r.headers["content-type"].startswith("application/json")
    cut = [r for r in responses if r.status_code == 503]
    assert cut, f"four batches of long texts outlast a 1 s grace period: {answers}"
    assert all(r.json()["error"]["code"] == "shutting_down" for r in cut)
    assert status == (1 if cut else 0), "the exit status tells a cut-off shutdown from a clean one"
    _assert_clean(proc.log.read_text())


def _assert_clean(log: str, *secrets: str) -> None:
    for secret in (ADMIN_KEY, SECRET, *secrets):
        assert secret not in log
    lowered = log.lower()
    assert "bearer " + ADMIN_KEY.lower() not in lowered
    assert "mbk_" not in log, "no API key, nor a fragment of one"
