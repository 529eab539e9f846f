"""The compose files: valid against the compose specification's schema (the copy that
check-jsonschema vendors), made of real settings, secrets by reference only."""

from __future__ import annotations

import copy
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from membank_server.config import Settings
from tests.deploy.manifests import (
    COMPOSE,
    COMPOSE_FILES,
    cli_command,
    compose_env,
    dockerfile,
    image_env,
    interpolated,
    yaml_docs,
)
from tests.deploy.settings_check import accepted, is_secret

_VARIABLE = re.compile(r"\$\{[A-Z0-9_]+:\?[^}]+\}")
_IMAGE = re.compile(r"^[\w./-]+:v?\d+\.\d+(\.\d+)?[\w.-]*$")


def _schema() -> dict[str, Any]:
    vendored = resources.files("check_jsonschema") / "builtin_schemas/vendor/compose-spec.json"
    return dict(json.loads(vendored.read_text()))


def _compose(path: Path) -> dict[str, Any]:
    [doc] = yaml_docs(path)
    return dict(doc)


def _example_values() -> dict[str, str]:
    """compose/.env.example's names, each given a value long enough for any check."""
    names = [
        line.split("=", 1)[0]
        for line in (COMPOSE / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    return {name: f"{name.lower()}-0123456789abcdefghijklmnopqrstuvwxyz" for name in names}


def _membank_services(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: svc
        for name, svc in doc["services"].items()
        if svc.get("image", "").startswith("membank:") or "build" in svc
    }


def test_every_yaml_file_parses() -> None:
    files = sorted(COMPOSE.rglob("*.yml")) + sorted(COMPOSE.rglob("*.yaml"))
    assert len(files) >= 10
    for path in files:
        assert yaml_docs(path), f"{path} holds no document"


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_files_follow_the_specification(path: Path) -> None:
    jsonschema.validate(_compose(path), _schema())


def test_the_schema_refuses_a_misspelt_key() -> None:
    doc = copy.deepcopy(_compose(COMPOSE_FILES[0]))
    doc["services"]["membank"]["enviroment"] = {"A": "b"}
    with pytest.raises(jsonschema.ValidationError, match="enviroment"):
        jsonschema.validate(doc, _schema())


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_membank_environments_are_accepted_settings(path: Path) -> None:
    doc = _compose(path)
    base = image_env(dockerfile())
    values = _example_values()
    services = _membank_services(doc)
    assert services
    for name, svc in services.items():
        env = {k: interpolated(v, values) for k, v in compose_env(svc).items()}
        settings: Settings = accepted({**base, **env})
        assert settings.server.port == 8080, name
        assert settings.jobs.backend == "postgres", f"{name}: a queue every replica shares"
        replicas = svc.get("deploy", {}).get("replicas", 1)
        assert settings.server.replicas >= replicas, (
            f"{name}: {replicas} replicas but server.replicas={settings.server.replicas}"
        )


def test_a_password_inside_a_url_is_seen() -> None:
    assert not _holds_no_password("postgresql://membank:hunter2@postgres:5432/membank")
    assert _holds_no_password("redis://redis:6379/0")


def _holds_no_password(value: str) -> bool:
    """A URL with no ``user:password@`` part (``redis://redis:6379/0``)."""
    return "://" in value and not re.search(r"://[^/@]*:[^/@]*@", value)


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_secrets_are_references_never_values(path: Path) -> None:
    doc = _compose(path)
    example = set(_example_values())
    for name, svc in doc["services"].items():
        for var, value in compose_env(svc).items():
            if not (is_secret(var) or var.endswith("_PASSWORD")):
                continue
            # From compose/.env, ${NAME:?...}; a DSN carries it in the password's place.
            refs = re.findall(r"\$\{([A-Z0-9_]+):\?", value)
            assert set(refs) <= example, f"{var}: {refs} missing from .env.example"
            assert refs or _holds_no_password(value), f"{path.name} {name}: {var} is inline"
    for line in (COMPOSE / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            assert line.endswith("="), f".env.example gives a value: {line}"


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_images_are_pinned(path: Path) -> None:
    for name, svc in _compose(path)["services"].items():
        image = svc.get("image")
        assert image, f"{name} has no image"
        assert _IMAGE.match(image), f"{name}: {image} is not pinned to a version"


def test_development_publishes_on_loopback_only() -> None:
    for name, svc in _compose(COMPOSE_FILES[0])["services"].items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_production_topology() -> None:
    doc = _compose(COMPOSE_FILES[1])
    services = doc["services"]
    membank = services["membank"]
    env = compose_env(membank)
    assert membank["deploy"]["replicas"] == int(env["MEMBANK_SERVER__REPLICAS"]) >= 2
    assert membank["read_only"] is True
    # Only nginx is published beyond loopback; membank itself is not published at all.
    assert "ports" not in membank
    for name, svc in services.items():
        for port in svc.get("ports", []):
            assert name == "nginx" or str(port).startswith("127.0.0.1:"), (name, port)
    # A 3-node Qdrant cluster, replication factor 2.
    nodes = [n for n in services if n.startswith("qdrant-")]
    assert len(nodes) == 3
    for node in nodes:
        assert compose_env(services[node])["QDRANT__CLUSTER__ENABLED"] == "true"
    assert env["MEMBANK_STORAGE__QDRANT__REPLICATION_FACTOR"] == "2"
    # nginx proxies to the served port; its address is the one trusted proxy.
    nginx = services["nginx"]
    assert compose_env(nginx)["NGINX_UPSTREAM"] == f"membank:{env['MEMBANK_SERVER__PORT']}"
    # The template replaces the image's default.conf (its welcome server on port 80).
    assert "./nginx/membank.conf:/etc/nginx/templates/default.conf.template:ro" in nginx["volumes"]
    nginx_ip = nginx["networks"]["backend"]["ipv4_address"]
    assert json.loads(env["MEMBANK_SECURITY__TRUSTED_PROXIES"]) == [f"{nginx_ip}/32"]
    # Prometheus scrapes the metrics listener's port.
    [prometheus] = yaml_docs(COMPOSE / "prometheus" / "prometheus.yml")
    [job] = prometheus["scrape_configs"]
    metrics_port = int(env["MEMBANK_SERVER__METRICS_ADDRESS"].rsplit(":", 1)[1])
    assert job["dns_sd_configs"][0]["port"] == metrics_port
    assert job["dns_sd_configs"][0]["names"] == ["membank"]
    # The setup service runs a real membank command before the replicas start.
    setup = services["membank-setup"]
    assert cli_command(setup["entrypoint"]) is not None
    condition = membank["depends_on"]["membank-setup"]["condition"]
    assert condition == "service_completed_successfully"


def test_required_variables_are_all_in_the_example() -> None:
    example = set(_example_values())
    for path in COMPOSE_FILES:
        text = path.read_text()
        for ref in _VARIABLE.findall(text):
            name = ref[2:].split(":", 1)[0]
            assert name in example, f"{path.name}: {name} is not in .env.example"
