"""compose/nginx/membank.conf: `nginx -t` with Debian's nginx and a certificate made
here, then a real nginx in front of a real ``membank serve``, all on loopback.

nginx is required: scripts/test installs it (apt-get install nginx) when missing; a
machine without it fails here, it never skips."""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import shutil
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.deploy.manifests import COMPOSE
from tests.support.server import ADMIN_KEY, ServerProcess, free_port

_TEMPLATE = COMPOSE / "nginx" / "membank.conf"
#: What a client connects from: another loopback address than nginx's own, so the
#: address membank records is the client's and not the proxy's.
_CLIENT = "127.0.0.2"
_SECURITY_HEADERS = {
    "strict-transport-security": "max-age=63072000; includeSubDomains",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


def _nginx() -> str:
    found = shutil.which("nginx", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/usr/local/sbin")
    if found is None:
        pytest.fail("nginx is not installed: scripts/test installs it (apt-get install nginx)")
    return found


def _certificate(folder: Path) -> Path:
    """A self-signed certificate for 127.0.0.1 as tls.crt/tls.key; its path (the CA)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "membank test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (folder / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "tls.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return folder / "tls.crt"


def _render(template: str, values: dict[str, str]) -> str:
    """What the nginx image's envsubst does: only ${NGINX_*} is replaced."""
    return re.sub(r"\$\{(NGINX_[A-Z_]+)\}", lambda m: values[m[1]], template)


class _Nginx:
    def __init__(self, prefix: Path, upstream: str) -> None:
        self.prefix = prefix
        self.https = free_port()
        self.http = free_port()
        certs = prefix / "tls"
        certs.mkdir()
        self.ca = _certificate(certs)
        site = _render(
            _TEMPLATE.read_text(),
            {
                "NGINX_HTTPS_LISTEN": f"127.0.0.1:{self.https}",
                "NGINX_HTTP_LISTEN": f"127.0.0.1:{self.http}",
                "NGINX_UPSTREAM": upstream,
                "NGINX_CERT_DIR": str(certs),
            },
        )
        (prefix / "membank.conf").write_text(site)
        temp = "\n".join(
            f"  {kind}_temp_path {prefix / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        # As root, workers would switch to nobody, who cannot enter pytest's 0700 folder.
        user = "user root;\n" if os.geteuid() == 0 else ""
        self.conf = prefix / "nginx.conf"
        self.conf.write_text(
            f"{user}worker_processes 1;\npid {prefix / 'nginx.pid'};\n"
            f"error_log {prefix / 'error.log'} notice;\n"
            "events { worker_connections 256; }\n"
            f"http {{\n  access_log off;\n{temp}\n  include {prefix / 'membank.conf'};\n}}\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def test(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [_nginx(), "-t", "-c", str(self.conf), "-p", str(self.prefix)],
            capture_output=True,
            text=True,
            check=False,
        )

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [_nginx(), "-c", str(self.conf), "-p", str(self.prefix), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"nginx exited:\n{(self.prefix / 'error.log').read_text()}")
            try:
                httpx.get(f"http://127.0.0.1:{self.http}/", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        pytest.fail("nginx did not listen in 30 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)

    def client(self, key: str | None = ADMIN_KEY) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(self.ca))
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(
            base_url=f"https://127.0.0.1:{self.https}",
            transport=httpx.HTTPTransport(verify=context, local_address=_CLIENT),
            headers=headers,
            timeout=60,
        )


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Nginx]:
    root = tmp_path_factory.mktemp("nginx")
    server = ServerProcess(
        root / "data",
        env={
            # nginx, the only proxy, talks to membank from 127.0.0.1.
            "MEMBANK_SECURITY__TRUSTED_PROXIES": '["127.0.0.1/32"]',
            "MEMBANK_SERVER__METRICS_ADDRESS": f"127.0.0.1:{free_port()}",
        },
    ).start()
    nginx = _Nginx(root, f"127.0.0.1:{server.port}")
    try:
        checked = nginx.test()
        assert checked.returncode == 0, checked.stderr
        nginx.start()
        yield nginx
    finally:
        nginx.stop()
        server.stop()


def test_the_configuration_passes_nginx_t(proxied: _Nginx) -> None:
    checked = proxied.test()
    assert checked.returncode == 0, checked.stderr
    assert "syntax is ok" in checked.stderr and "test is successful" in checked.stderr


def test_nginx_t_refuses_a_broken_configuration(proxied: _Nginx, tmp_path: Path) -> None:
    broken = tmp_path / "nginx.conf"
    broken.write_text(proxied.conf.read_text().replace("events {", "events { no_such_directive;"))
    checked = subprocess.run(
        [_nginx(), "-t", "-c", str(broken), "-p", str(proxied.prefix)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode != 0 and "no_such_directive" in checked.stderr


def test_answers_carry_the_security_headers_once(proxied: _Nginx) -> None:
    with proxied.client() as client:
        for path, status in (("/health", 200), ("/ready", 200), ("/v1/no-such-route", 404)):
            r = client.get(path)
            assert r.status_code == status, (path, r.text)
            assert r.http_version == "HTTP/1.1"
            for name, value in _SECURITY_HEADERS.items():
                assert r.headers.get_list(name) == [value], (path, name)
            assert r.headers["server"] == "nginx", "no version in Server"


def test_metrics_are_not_served_through_the_proxy(proxied: _Nginx) -> None:
    with proxied.client() as client:
        r = client.get("/metrics")
    assert r.status_code == 404
    assert r.headers["strict-transport-security"] == _SECURITY_HEADERS["strict-transport-security"]


def test_plain_http_is_redirected_to_https(proxied: _Nginx) -> None:
    r = httpx.get(f"http://127.0.0.1:{proxied.http}/health?x=1", timeout=10)
    assert r.status_code == 308
    assert r.headers["location"] == "https://127.0.0.1/health?x=1"


def test_bodies_over_the_limit_stop_at_nginx(proxied: _Nginx) -> None:
    with proxied.client() as client:
        r = client.post(
            "/v1/memories/batch",
            content=b"x" * (16 * 1024 * 1024 + 1),
            headers={"Content-Type": "application/json"},
        )
    assert r.status_code == 413
    assert r.headers["x-content-type-options"] == "nosniff"


def test_membank_records_the_client_address_not_a_forged_one(proxied: _Nginx) -> None:
    request_id = uuid.uuid4().hex
    with proxied.client(key="mb_not-a-real-key-0123456789abcdefghijklmnop") as client:
        r = client.get(
            "/v1/memories",
            params={"user_id": "u1"},
            headers={"X-Forwarded-For": "198.51.100.7", "X-Request-Id": request_id},
        )
    assert r.status_code == 401
    assert r.headers["x-request-id"] == request_id
    with proxied.client() as admin:
        entries = admin.get("/v1/admin/audit", params={"limit": 1000}).json()
    [entry] = [e for e in entries if e["request_id"] == request_id]
    # nginx appended its peer (the client) to the forged header; membank believes only
    # what its trusted proxy added.
    assert entry["client"] == _CLIENT
    assert entry["result"] == "denied"


def test_tls_below_1_2_is_refused(proxied: _Nginx) -> None:
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        context = ssl.create_default_context(cafile=str(proxied.ca))
        context.minimum_version = context.maximum_version = version
        with httpx.Client(verify=context) as client:
            r = client.get(f"https://127.0.0.1:{proxied.https}/health")
        assert r.status_code == 200, version
    conf = _TEMPLATE.read_text()
    assert re.search(r"^\s*ssl_protocols TLSv1\.2 TLSv1\.3;$", conf, re.MULTILINE)
