"""The same API served from QdrantStore (qdrant-client local mode stands in for the server)."""

from __future__ import annotations

from pathlib import Path

from tests.support.server import ServerProcess


def test_serve_on_the_qdrant_backend(tmp_path: Path) -> None:
    server = ServerProcess(
        tmp_path / "data",
        env={
            "MEMBANK_STORAGE__BACKEND": "qdrant",
            "MEMBANK_STORAGE__QDRANT__PATH": str(tmp_path / "qdrant"),
        },
    ).start()
    try:
        with server.client() as http:
            assert http.get("/v1/collection").json()["backend"] == "qdrant"
            facts = [
                "I am allergic to peanuts",
                "My sister lives in Lisbon",
                "I drive a blue Toyota",
            ]
            r = http.post(
                "/v1/memories/batch",
                json={"memories": [{"user_id": "ana", "content": f} for f in facts]},
            )
            assert r.status_code == 201 and r.json()["created"] == 3
            hit = http.post(
                "/v1/search", json={"user_id": "ana", "query": "what food should I avoid?"}
            )
            assert hit.json()["results"][0]["memory"]["content"] == facts[0]
            assert (
                http.post("/v1/search", json={"user_id": "bo", "query": "peanuts"}).json()[
                    "results"
                ]
                == []
            )
            mid = r.json()["items"][2]["id"]
            upd = http.patch(
                f"/v1/memories/{mid}",
                params={"user_id": "ana"},
                json={"content": "I drive a red Honda"},
                headers={"If-Match": '"1"'},
            )
            assert upd.status_code == 200 and upd.json()["version"] == 2
            assert http.delete(f"/v1/memories/{mid}", params={"user_id": "ana"}).status_code == 204
            events = http.get(f"/v1/memories/{mid}/history", params={"user_id": "ana"}).json()
            assert [e["event"] for e in events["items"]] == ["ADD", "UPDATE", "DELETE"]
            page = http.get("/v1/memories", params={"user_id": "ana"}).json()
            assert len(page["items"]) == 2
        server.stop()
        server.start()
        with server.client() as http:
            assert len(http.get("/v1/memories", params={"user_id": "ana"}).json()["items"]) == 2
    finally:
        server.stop()
