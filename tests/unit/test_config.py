from __future__ import annotations

from pathlib import Path

import pytest

from membank_server.config import load_settings, masked
from membank_server.domain.errors import ConfigError


def test_defaults_are_the_embedded_store() -> None:
    s = load_settings(environ={})
    assert (s.server.host, s.server.port, s.server.workers) == ("127.0.0.1", 8080, 1)
    assert s.storage.backend == "edge" and s.embedder.provider == "onnx"


def test_toml_then_env(tmp_path: Path) -> None:
    f = tmp_path / "m.toml"
    f.write_text('[server]\nport = 9000\n[storage.edge]\npath = "/x"\n')
    s = load_settings(f, environ={"MEMBANK_SERVER__PORT": "9100"})
    assert s.server.port == 9100 and s.storage.edge.path == "/x"
    s = load_settings(environ={"MEMBANK_CONFIG": str(f)})
    assert s.server.port == 9000


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"MEMBANK_SERVER__PORT": "eighty"}, "server.port"),
        ({"MEMBANK_SERVER__PORT": "0"}, "server.port"),
        ({"MEMBANK_SERVR__PORT": "1"}, "servr"),
        ({"MEMBANK_STORAGE__BACKEND": "mongo"}, "storage.backend"),
        ({"MEMBANK_SERVER__WORKERS": "2"}, "server.workers"),
        ({"MEMBANK_STORAGE__BACKEND": "qdrant"}, "storage.qdrant.url"),
        ({"MEMBANK_LIMITS__BATCH_MAX_ITEMS": "-1"}, "limits.batch_max_items"),
        (
            {"MEMBANK_SECURITY__RATE_LIMIT__LEASE_FRACTION": "0.9"},
            "security.rate_limit.lease_fraction",
        ),
        (
            {"MEMBANK_SECURITY__RATE_LIMIT__LEASE_SECONDS": "0"},
            "security.rate_limit.lease_seconds",
        ),
    ],
)
def test_bad_settings_name_the_setting(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(environ=env)
    assert needle in err.value.message and "\n" not in err.value.message


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad, environ={})


def test_masked_hides_secrets() -> None:
    s = load_settings(
        environ={"MEMBANK_STORAGE__QDRANT__API_KEY": "s3cret", "MEMBANK_EMBEDDER__API_KEY": "k"}
    )
    shown = masked(s)
    assert shown["storage"]["qdrant"]["api_key"] == "***"
    assert shown["embedder"]["api_key"] == "***"
    assert "s3cret" not in str(shown)


def test_masked_hides_passwords_in_urls() -> None:
    s = load_settings(
        environ={
            "MEMBANK_STORAGE__BACKEND": "pgvector",
            "MEMBANK_STORAGE__POSTGRES__DSN": "postgresql://app:hunter2@db:5432/membank",
            "MEMBANK_CACHE__REDIS_URL": "redis://:redispw@cache:6379/0",
        }
    )
    shown = str(masked(s))
    assert "hunter2" not in shown and "redispw" not in shown
    assert "postgresql://app:***@db:5432/membank" in shown


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"MEMBANK_STORAGE__BACKEND": "pgvector"}, "storage.postgres.dsn"),
        (
            {
                "MEMBANK_STORAGE__BACKEND": "hybrid",
                "MEMBANK_STORAGE__POSTGRES__DSN": "postgresql://x/y",
                "MEMBANK_STORAGE__HYBRID__SECONDARY": "pgvector",
            },
            "must differ",
        ),
        (
            {
                "MEMBANK_STORAGE__BACKEND": "hybrid",
                "MEMBANK_STORAGE__POSTGRES__DSN": "postgresql://x/y",
                "MEMBANK_STORAGE__QDRANT__URL": "http://q:6333",
                "MEMBANK_STORAGE__HYBRID__CONSISTENCY": "strong",
            },
            "write=both",
        ),
        ({"MEMBANK_CACHE__L3_URL": "redis://x"}, "cache.redis_url"),
    ],
)
def test_storage_and_cache_combinations(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(environ=env)
    assert needle in err.value.message


def test_masked_hides_security_material() -> None:
    s = load_settings(
        environ={
            "MEMBANK_SECURITY__ADMIN_KEY": "a" * 40,
            "MEMBANK_SECURITY__ENCRYPTION__ENABLED": "true",
            "MEMBANK_SECURITY__ENCRYPTION__KEYS": '{"k1": "S2V5TWF0ZXJpYWw="}',
            "MEMBANK_SECURITY__ENCRYPTION__ACTIVE": "k1",
            "MEMBANK_SECURITY__ENCRYPTION__INDEX_KEY": "SW5kZXhNYXRlcmlhbA==",
        }
    )
    shown = masked(s)
    text = str(shown)
    assert "a" * 40 not in text and "S2V5" not in text and "SW5k" not in text
    assert shown["security"]["encryption"]["keys"] == "***"
    assert shown["security"]["keys_backend"] == "sqlite"


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"MEMBANK_SECURITY__ADMIN_KEY": "short"}, "at least 32"),
        ({"MEMBANK_SECURITY__KEYS_BACKEND": "postgres"}, "keys_dsn"),
        ({"MEMBANK_SECURITY__AUDIT__SINK": "postgres"}, "audit.dsn"),
        ({"MEMBANK_SECURITY__TRUSTED_PROXIES": '["not-an-ip"]'}, "not-an-ip"),
        ({"MEMBANK_SECURITY__TRUSTED_PROXIES": "[oops"}, "not valid JSON"),
        ({"MEMBANK_SECURITY__ENCRYPTION__ENABLED": "true"}, "generate-data-key"),
        ({"MEMBANK_SECURITY__RATE_LIMIT__BURST": "0"}, "rate_limit.burst"),
        ({"MEMBANK_SECURITY__LOCKOUT__MAX_SECONDS": "-1"}, "lockout.max_seconds"),
    ],
)
def test_security_settings_are_checked(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(environ=env)
    assert needle in err.value.message


def test_kubernetes_service_links_are_not_settings() -> None:
    # Exactly what Kubernetes injects into every pod for Services named membank and
    # membank-redis (enableServiceLinks defaults to true).
    links = {
        "MEMBANK_SERVICE_HOST": "10.96.12.7",
        "MEMBANK_SERVICE_PORT": "8080",
        "MEMBANK_SERVICE_PORT_HTTP": "8080",
        "MEMBANK_PORT": "tcp://10.96.12.7:8080",
        "MEMBANK_PORT_8080_TCP": "tcp://10.96.12.7:8080",
        "MEMBANK_PORT_8080_TCP_PROTO": "tcp",
        "MEMBANK_PORT_8080_TCP_PORT": "8080",
        "MEMBANK_PORT_8080_TCP_ADDR": "10.96.12.7",
        "MEMBANK_REDIS_SERVICE_HOST": "10.96.3.9",
        "MEMBANK_REDIS_PORT_6379_TCP_ADDR": "10.96.3.9",
        "MEMBANK_SERVER__PORT": "9000",
    }
    s = load_settings(environ=links)
    assert s.server.port == 9000 and s.server.host == "127.0.0.1"
    # Typo protection stays for everything else.
    for typo in ("MEMBANK_PORTS", "MEMBANK_SERVICE", "MEMBANK_LOG_LEVEL"):
        with pytest.raises(ConfigError):
            load_settings(environ={typo: "1"})
