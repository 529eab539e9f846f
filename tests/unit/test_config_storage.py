"""Storage choices: typed kinds and hybrid policies, each bad one a line naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from membank_server.bootstrap import SINGLE_STORES, build_single_store
from membank_server.config import load_settings
from membank_server.domain.errors import ConfigError
from membank_server.domain.storage import (
    Consistency,
    HybridPolicy,
    ReadMode,
    StoreKind,
    WriteMode,
)
from membank_server.storage.edge import VectorLayout

_HYBRID = {
    "MEMBANK_STORAGE__BACKEND": "hybrid",
    "MEMBANK_STORAGE__POSTGRES__DSN": "postgresql://u@127.0.0.1/db",
    "MEMBANK_STORAGE__QDRANT__LOCATION": ":memory:",
}


def _refused(env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as err:
        load_settings(environ=env)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_settings_hold_typed_choices() -> None:
    s = load_settings(environ={**_HYBRID, "MEMBANK_STORAGE__HYBRID__READ": "fastest"})
    assert s.storage.backend is StoreKind.HYBRID
    assert s.storage.kinds == {StoreKind.PGVECTOR, StoreKind.QDRANT}
    assert s.storage.hybrid.policy == HybridPolicy(
        WriteMode.ASYNC_BOTH, ReadMode.FASTEST, Consistency.EVENTUAL, 1_000_000
    )


def test_an_unknown_storage_kind_names_the_setting_and_the_choices() -> None:
    message = _refused({"MEMBANK_STORAGE__BACKEND": "mongo"})
    assert message == (
        "setting storage.backend must be one of edge, qdrant, pgvector, hybrid, not 'mongo'"
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [("write", "sometimes"), ("read", "random"), ("consistency", "total"), ("primary", "x")],
)
def test_an_invalid_hybrid_value_names_the_setting(name: str, value: str) -> None:
    message = _refused({**_HYBRID, f"MEMBANK_STORAGE__HYBRID__{name.upper()}": value})
    assert message.startswith(f"setting storage.hybrid.{name} must be one of ")
    assert repr(value) in message


@pytest.mark.parametrize(
    ("env", "line"),
    [
        (
            {"MEMBANK_STORAGE__HYBRID__SECONDARY": "pgvector"},
            "storage.hybrid.primary and storage.hybrid.secondary must differ",
        ),
        (
            {"MEMBANK_STORAGE__HYBRID__SECONDARY": "hybrid"},
            "setting storage.hybrid.secondary must be a single store, not hybrid",
        ),
        (
            {"MEMBANK_STORAGE__HYBRID__CONSISTENCY": "strong"},
            "setting storage.hybrid.consistency=strong needs storage.hybrid.write=both "
            "(a 2xx only once both stores have the write)",
        ),
        (
            {
                "MEMBANK_STORAGE__HYBRID__WRITE": "primary_only",
                "MEMBANK_STORAGE__HYBRID__READ": "both",
            },
            "setting storage.hybrid.read=both needs writes to reach the secondary: "
            "storage.hybrid.write=primary_only never writes it",
        ),
        (
            {
                "MEMBANK_STORAGE__HYBRID__PRIMARY": "qdrant",
                "MEMBANK_STORAGE__HYBRID__SECONDARY": "edge",
            },
            "storage.hybrid.write=async_both keeps its outbox in PostgreSQL: "
            "storage.hybrid.primary must be pgvector",
        ),
        (
            {"MEMBANK_STORAGE__HYBRID__ROUTE_THRESHOLD": "-1"},
            "setting storage.hybrid.route_threshold must be at least 0, got -1",
        ),
        (
            {"MEMBANK_STORAGE__EDGE__BUILD_THRESHOLD": "-1"},
            "setting storage.edge.build_threshold must be at least 0, got -1",
        ),
        (
            {"MEMBANK_STORAGE__EDGE__BUILD_CHECK_INTERVAL": "0"},
            "setting storage.edge.build_check_interval must be positive, got 0.0",
        ),
        (
            {"MEMBANK_STORAGE__EDGE__INDEXING_THRESHOLD_KB": "0"},
            "setting storage.edge.indexing_threshold_kb must be positive, got 0",
        ),
        (
            {"MEMBANK_STORAGE__HYBRID__OUTBOX_BATCH": "0"},
            "setting storage.hybrid.outbox_batch must be positive, got 0",
        ),
        (
            {"MEMBANK_STORAGE__HYBRID__SECONDARY": "edge", "MEMBANK_SERVER__WORKERS": "2"},
            "setting server.workers must be 1 with storage.backend=edge: an embedded "
            "Qdrant Edge folder is opened by one process only (use storage.backend=qdrant "
            "to run several workers)",
        ),
        (
            {"MEMBANK_STORAGE__POSTGRES__DSN": ""},
            "storage.postgres.dsn is required to use the pgvector store",
        ),
        (
            {"MEMBANK_STORAGE__QDRANT__URL": "http://127.0.0.1:6333"},
            "storage.backend=qdrant needs exactly one of storage.qdrant.url, "
            "storage.qdrant.location (':memory:') or storage.qdrant.path",
        ),
    ],
)
def test_each_cross_field_rule_is_one_line(env: dict[str, str], line: str) -> None:
    assert _refused({**_HYBRID, **env}) == line


def test_renamed_hnsw_settings_keep_their_old_names(tmp_path: Path) -> None:
    f = tmp_path / "m.toml"
    f.write_text("[storage.edge]\nhnsw_ef = 64\nhnsw_ef_construct = 200\n")
    edge = load_settings(f, environ={}).storage.edge
    assert (edge.hnsw_ef_search, edge.hnsw_ef_construction) == (64, 200)
    message = _refused(
        {"MEMBANK_STORAGE__QDRANT__HNSW_EF": "1", "MEMBANK_STORAGE__QDRANT__HNSW_EF_SEARCH": "2"}
    )
    assert message == (
        "setting storage.qdrant.hnsw_ef is the old name of storage.qdrant.hnsw_ef_search: "
        "give only one"
    )


def test_the_store_registry_refuses_what_is_not_a_single_store() -> None:
    settings = load_settings(environ={})
    assert set(SINGLE_STORES) == {StoreKind.EDGE, StoreKind.QDRANT, StoreKind.PGVECTOR}
    for kind in ("hybrid", "mongo"):
        with pytest.raises(ConfigError, match=rf"no single store of kind '{kind}'"):
            build_single_store(settings, kind)


_SHARED = {
    "MEMBANK_STORAGE__BACKEND": "qdrant",
    "MEMBANK_STORAGE__QDRANT__URL": "http://qdrant:6333",
    "MEMBANK_STORAGE__POSTGRES__DSN": "postgresql://u@postgres/db",
    "MEMBANK_SECURITY__KEYS_BACKEND": "postgres",
    "MEMBANK_SECURITY__AUDIT__SINK": "postgres",
    "MEMBANK_JOBS__BACKEND": "postgres",
}


@pytest.mark.parametrize(
    ("env", "line"),
    [
        (
            {"MEMBANK_STORAGE__BACKEND": "edge"},
            "setting server.replicas=3 needs a shared store: the embedded store (edge) keeps "
            "its data in one instance's folder (use storage.backend=qdrant, pgvector or "
            "hybrid of those)",
        ),
        (
            {**_HYBRID, "MEMBANK_STORAGE__HYBRID__SECONDARY": "edge"},
            "setting server.replicas=3 needs a shared store: the embedded store (edge) keeps "
            "its data in one instance's folder (use storage.backend=qdrant, pgvector or "
            "hybrid of those)",
        ),
        (
            {"MEMBANK_SECURITY__KEYS_BACKEND": "sqlite"},
            "setting security.keys_backend=sqlite keeps API keys in one instance's folder: "
            "with server.replicas=3 set security.keys_backend=postgres",
        ),
        (
            {"MEMBANK_SECURITY__AUDIT__SINK": "file"},
            "setting security.audit.sink=file writes one instance's audit log: "
            "with server.replicas=3 set security.audit.sink=postgres",
        ),
        (
            # auto, with neither Redis nor pgvector: the local file.
            {"MEMBANK_JOBS__BACKEND": "auto"},
            "setting jobs.backend resolves to local, a file in one instance's data folder: "
            "with server.replicas=3 set jobs.backend to redis or postgres",
        ),
        ({"MEMBANK_SERVER__REPLICAS": "0"}, "setting server.replicas must be positive, got 0"),
    ],
)
def test_several_replicas_refuse_what_one_instance_keeps(env: dict[str, str], line: str) -> None:
    assert _refused({**_SHARED, "MEMBANK_SERVER__REPLICAS": "3", **env}) == line


def test_several_replicas_on_shared_stores_start() -> None:
    s = load_settings(environ={**_SHARED, "MEMBANK_SERVER__REPLICAS": "3"})
    assert s.server.replicas == 3
    # One replica (the default) keeps every single-instance choice.
    assert load_settings(environ={}).server.replicas == 1


def test_edge_quantization_is_scalar_by_default_and_its_rules_are_one_line() -> None:
    edge = load_settings(environ={}).storage.edge
    assert (edge.quantization, edge.quantization_oversampling, edge.original_vectors) == (
        "scalar",
        2.0,
        "auto",
    )
    off = load_settings(environ={"MEMBANK_STORAGE__EDGE__QUANTIZATION": "none"})
    assert off.storage.edge.quantization == "none"
    # auto: the float32 vectors on disk exactly when only rescoring reads them.
    assert VectorLayout.of("scalar", 2.0, "auto") == VectorLayout("scalar", 2.0, on_disk=True)
    assert VectorLayout.of("none", 2.0, "auto") == VectorLayout("none", 2.0, on_disk=False)
    assert VectorLayout.of("scalar", 3.0, "ram") == VectorLayout("scalar", 3.0, on_disk=False)
    assert _refused({"MEMBANK_STORAGE__EDGE__QUANTIZATION_OVERSAMPLING": "0.5"}) == (
        "setting storage.edge.quantization_oversampling must be between 1 and 16, got 0.5"
    )
    message = _refused({"MEMBANK_STORAGE__EDGE__QUANTIZATION": "binary"})
    assert message.startswith("setting storage.edge.quantization must be one of ")


def test_a_literal_choice_names_the_setting_and_the_choices() -> None:
    assert _refused({"MEMBANK_STORAGE__DISTANCE": "manhattan"}) == (
        "setting storage.distance must be one of cosine, dot, euclid, not 'manhattan'"
    )
