"""An OpenAI-compatible ``POST /v1/embeddings`` over membank's own embedder.

It lets mem0 (whose ``openai`` embedder speaks this protocol) embed with exactly
the model membank uses, on this machine: all-MiniLM-L6-v2, int8 ONNX, 384-d.
Served by uvicorn in a process of its own (see ``embed_server``), on 127.0.0.1.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import numpy as np
from litestar import Litestar, post
from litestar.exceptions import HTTPException
from litestar.params import JSONBody

from membank_cli.application import Application
from membank_server.domain.ports import Embedder

__all__ = ["EmbeddingRequest", "create_app"]


class EmbeddingRequest(msgspec.Struct, kw_only=True):
    input: str | list[str]
    model: str = "all-MiniLM-L6-v2"
    encoding_format: str = "float"
    dimensions: int | None = None
    user: str | None = None


def create_app() -> Litestar:
    # Defaults only: the offline ONNX embedder, whatever MEMBANK_* the caller has set.
    embedder: Embedder = Application(environ={}).embedder()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await embedder.start()
        try:
            yield
        finally:
            await embedder.aclose()

    @post("/v1/embeddings", status_code=200)
    async def embeddings(data: JSONBody[EmbeddingRequest]) -> dict[str, Any]:
        texts = [data.input] if isinstance(data.input, str) else data.input
        if data.dimensions not in (None, embedder.dimension):
            raise HTTPException(
                status_code=400, detail=f"this model has {embedder.dimension} dimensions"
            )
        if data.encoding_format not in ("float", "base64"):
            raise HTTPException(status_code=400, detail="encoding_format is float or base64")
        vectors = await embedder.embed(texts)

        def encode(v: list[float]) -> list[float] | str:
            if data.encoding_format == "float":
                return v
            return base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode()

        return {
            "object": "list",
            "model": data.model,
            "data": [
                {"object": "embedding", "index": i, "embedding": encode(v)}
                for i, v in enumerate(vectors)
            ],
            "usage": {"prompt_tokens": 0, "total_tokens": 0},
        }

    return Litestar(route_handlers=[embeddings], lifespan=[lifespan], logging_config=None)
