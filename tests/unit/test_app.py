"""The Litestar app over fakes: readiness, the error table, the error body."""

from __future__ import annotations

import asyncio

from litestar.testing import TestClient

from membank_server.api.app import create_app
from membank_server.config import load_settings
from membank_server.domain.errors import EmbedderUnavailable
from membank_server.services.container import Services
from tests.unit.fakes import FakeEmbedder, InMemoryStore
from tests.unit.services import services_over


class SlowEmbedder(FakeEmbedder):
    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def start(self) -> None:
        await self.release.wait()


class BrokenEmbedder(FakeEmbedder):
    async def start(self) -> None:
        raise EmbedderUnavailable("model file missing")

    async def embed(self, texts: object) -> list[list[float]]:
        raise EmbedderUnavailable("model file missing")


def _app(embedder: FakeEmbedder) -> tuple[TestClient, Services]:  # type: ignore[type-arg]
    services = services_over(InMemoryStore(), embedder)
    settings = load_settings(environ={"MEMBANK_SECURITY__AUTH": "false"})
    return TestClient(create_app(services, settings)), services


def test_ready_is_503_until_the_embedder_is_loaded() -> None:
    embedder = SlowEmbedder()
    client, _ = _app(embedder)
    with client:
        r = client.get("/ready")
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "not_ready"
        assert r.headers["retry-after"] == "1"
        assert client.get("/health").status_code == 200
        with client.portal() as portal:
            portal.call(_release, embedder)
        for _ in range(100):
            if client.get("/ready").status_code == 200:
                break
        assert client.get("/ready").json()["status"] == "ready"


async def _release(embedder: SlowEmbedder) -> None:
    embedder.release.set()
    await asyncio.sleep(0.01)


def test_embedder_failure_is_503_not_500() -> None:
    client, _ = _app(BrokenEmbedder())
    with client:
        ready = client.get("/ready")
        assert ready.status_code == 503 and "model file missing" in ready.json()["error"]["message"]
        r = client.post("/v1/memories", json={"user_id": "u", "content": "hello"})
        assert r.status_code == 503
        assert r.json()["error"] == {
            "code": "embedder_unavailable",
            "message": "model file missing",
            "details": {},
        }
        # A client vector needs no embedder: the write still works.
        ok = client.post(
            "/v1/memories", json={"user_id": "u", "content": "hi", "vector": [1.0] * 8}
        )
        assert ok.status_code == 201, ok.text
