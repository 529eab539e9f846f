"""membank over HTTP, as any client sees it: one pooled httpx client shared by threads."""

from __future__ import annotations

import httpx

__all__ = ["MembankSide"]


class MembankSide:
    def __init__(self, url: str, key: str, threads: int) -> None:
        limits = httpx.Limits(max_connections=threads, max_keepalive_connections=threads)
        self._http = httpx.Client(
            base_url=url,
            timeout=120,
            limits=limits,
            headers={"Authorization": f"Bearer {key}"},
        )

    def add(self, user_id: str, text: str) -> str:
        r = self._http.post("/v1/memories", json={"user_id": user_id, "content": text})
        r.raise_for_status()
        return str(r.json()["id"])

    def search(self, user_id: str, query: str, limit: int) -> list[str]:
        r = self._http.post("/v1/search", json={"user_id": user_id, "query": query, "limit": limit})
        r.raise_for_status()
        return [str(hit["memory"]["id"]) for hit in r.json()["results"]]

    def exists(self, user_id: str, memory_id: str) -> bool:
        r = self._http.get(f"/v1/memories/{memory_id}", params={"user_id": user_id})
        if r.status_code == 404:
            return False
        r.raise_for_status()
        return True

    def close(self) -> None:
        self._http.close()
