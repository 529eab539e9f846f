"""The Kubernetes manifests: every object valid against the schemas of a pinned
Kubernetes version (kubernetes-validate's, strict: unknown fields refused), the
environment real settings, secrets by reference, probes and ports what serve serves."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from membank_server.config import ServerSettings, load_settings
from tests.deploy.manifests import (
    K8S,
    cli_command,
    dockerfile,
    image_env,
    k8s_objects,
    pod_specs,
    yaml_docs,
)
from tests.deploy.settings_check import accepted, is_secret

#: The Kubernetes release the manifests are checked against (schemas in the package).
KUBERNETES = "1.32.0"
_OBJECTS = list(k8s_objects())
#: Exactly what Kubernetes injects for a Service named ``membank`` (port 8080, 9100).
_SERVICE_LINKS = {
    "MEMBANK_SERVICE_HOST": "10.96.12.7",
    "MEMBANK_SERVICE_PORT": "8080",
    "MEMBANK_SERVICE_PORT_HTTP": "8080",
    "MEMBANK_SERVICE_PORT_METRICS": "9100",
    "MEMBANK_PORT": "tcp://10.96.12.7:8080",
    "MEMBANK_PORT_8080_TCP": "tcp://10.96.12.7:8080",
    "MEMBANK_PORT_8080_TCP_PROTO": "tcp",
    "MEMBANK_PORT_8080_TCP_PORT": "8080",
    "MEMBANK_PORT_8080_TCP_ADDR": "10.96.12.7",
    "MEMBANK_PORT_9100_TCP": "tcp://10.96.12.7:9100",
    "MEMBANK_PORT_9100_TCP_PROTO": "tcp",
    "MEMBANK_PORT_9100_TCP_PORT": "9100",
    "MEMBANK_PORT_9100_TCP_ADDR": "10.96.12.7",
}


def _one(kind: str, name: str | None = None) -> dict[str, Any]:
    [obj] = [o for _, o in _OBJECTS if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    return obj


def _config() -> dict[str, str]:
    return dict(_one("ConfigMap", "membank-config")["data"])


def _secret_template() -> dict[str, str]:
    return dict(_one("Secret", "membank-secrets")["stringData"])


def _filled_secrets() -> dict[str, str]:
    fills = {
        "MEMBANK_STORAGE__POSTGRES__DSN": "postgresql://membank:pw@postgres:5432/membank",
        "MEMBANK_CACHE__REDIS_URL": "redis://:pw@redis:6379/0",
        "MEMBANK_BACKUP__KEY": base64.b64encode(bytes(32)).decode(),
        "MEMBANK_BACKUP__WEBHOOK_URL": "https://alerts.example.invalid/hook?token=t",
    }
    return {k: fills.get(k, "x" * 40) for k in _secret_template()}


def _containers() -> list[tuple[str, dict[str, Any]]]:
    return [(where, c) for where, spec in pod_specs() for c in spec["containers"]]


@pytest.mark.parametrize(
    ("path", "obj"),
    _OBJECTS,
    ids=[f"{p.name}:{o['kind']}/{o['metadata']['name']}" for p, o in _OBJECTS],
)
def test_every_object_validates_against_the_pinned_schemas(path: Path, obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, KUBERNETES, strict=True)


def test_validation_refuses_a_misspelt_field() -> None:
    bad = copy.deepcopy(_one("Deployment", "membank"))
    bad["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES, strict=True)


def test_the_kustomization_lists_every_manifest_but_the_secret_template() -> None:
    [kustomization] = yaml_docs(K8S / "kustomization.yaml")
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk - {"secret.template.yaml"}
    assert kustomization["namespace"] == "membank"


def test_the_environment_is_accepted_settings_even_beside_service_links() -> None:
    env = {**image_env(dockerfile()), **_config(), **_filled_secrets()}
    settings = accepted(env)
    assert settings.security.keys_backend == "postgres"
    assert settings.jobs.backend == "postgres" and settings.jobs.embed_store.max > 0
    # A pod of the namespace also gets the Service's links (enableServiceLinks is off
    # in ours, but another Service named membank-* would still add its own).
    assert load_settings(environ={**env, **_SERVICE_LINKS}) == settings


def test_secrets_are_references_never_values() -> None:
    config = _config()
    for name in config:
        assert not is_secret(name), f"ConfigMap holds {name}: put it in the Secret"
    for name, value in _secret_template().items():
        assert value == "REPLACE_ME", f"the template gives {name} a value"
    for where, container in _containers():
        for var in container.get("env", []):
            assert "value" not in var or not is_secret(var["name"]), f"{where}: {var['name']}"
        sources = container.get("envFrom", [])
        assert {"secretRef": {"name": "membank-secrets"}} in sources, where
        assert {"configMapRef": {"name": "membank-config"}} in sources, where


def test_pods_run_restricted() -> None:
    specs = dict(pod_specs())
    assert {"Deployment/membank", "Job/membank-collection-setup"} <= set(specs)
    for where, spec in specs.items():
        assert spec["enableServiceLinks"] is False, where
        assert spec["automountServiceAccountToken"] is False, where
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] == 10001, where
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", where
        mounts: set[str] = set()
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert c["resources"]["requests"] and c["resources"]["limits"], where
            assert c["image"] == "membank:0.1.0", where
            mounts |= {m["mountPath"] for m in c.get("volumeMounts", [])}
        # Writable: the data folder and /tmp, and nothing else.
        assert mounts == {"/var/lib/membank", "/tmp"}, where


def test_commands_are_real_cli_commands() -> None:
    for where, container in _containers():
        argv = container.get("command") or ["membank", "serve"]  # the image's ENTRYPOINT
        argv = [*argv, *container.get("args", [])]
        assert cli_command(argv) is not None, f"{where}: {argv} is not a membank command"


def test_probes_and_ports_are_what_serve_serves() -> None:
    config = _config()
    port = int(config["MEMBANK_SERVER__PORT"])
    metrics = int(config["MEMBANK_SERVER__METRICS_ADDRESS"].rsplit(":", 1)[1])
    assert port == ServerSettings().port
    deployment = _one("Deployment", "membank")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": port, "metrics": metrics}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > float(config["MEMBANK_SERVER__SHUTDOWN_TIMEOUT"])
    service = _one("Service", "membank")
    assert {p["port"]: p["targetPort"] for p in service["spec"]["ports"]} == {
        port: "http",
        metrics: "metrics",
    }
    policy = _one("NetworkPolicy", "membank")
    allowed = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    assert allowed == {port, metrics}


def test_scaling_matches_the_replicas_setting() -> None:
    hpa = _one("HorizontalPodAutoscaler", "membank")["spec"]
    assert {m["resource"]["name"] for m in hpa["metrics"]} == {"cpu", "memory"}
    assert int(_config()["MEMBANK_SERVER__REPLICAS"]) == hpa["maxReplicas"]
    deployment = _one("Deployment", "membank")["spec"]
    assert hpa["minReplicas"] <= deployment["replicas"] <= hpa["maxReplicas"]
    pdb = _one("PodDisruptionBudget", "membank")["spec"]
    assert pdb["minAvailable"] < hpa["minReplicas"]
    labels = deployment["template"]["metadata"]["labels"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items()
    trusted = json.loads(_config()["MEMBANK_SECURITY__TRUSTED_PROXIES"])
    assert trusted, "the ingress controller's addresses are trusted for X-Forwarded-For"
