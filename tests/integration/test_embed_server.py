"""The OpenAI-compatible embeddings endpoint mem0 uses in bench compare, over the real model."""

from __future__ import annotations

import base64

import numpy as np
from litestar.testing import TestClient

from membank_cli.compare.embed_server import create_app


def test_float_and_base64_answers_carry_the_same_384_d_unit_vectors() -> None:
    with TestClient(create_app()) as client:
        texts = ["I am allergic to peanuts.", "What should I avoid eating?"]
        floats = client.post("/v1/embeddings", json={"input": texts, "model": "m"})
        assert floats.status_code == 200, floats.text
        body = floats.json()
        assert [d["index"] for d in body["data"]] == [0, 1]
        vectors = np.array([d["embedding"] for d in body["data"]], dtype=np.float32)
        assert vectors.shape == (2, 384)
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-3)
        packed = client.post(
            "/v1/embeddings", json={"input": texts[0], "encoding_format": "base64"}
        ).json()
        decoded = np.frombuffer(base64.b64decode(packed["data"][0]["embedding"]), dtype="<f4")
        assert np.allclose(decoded, vectors[0], atol=1e-6)
        wrong = client.post("/v1/embeddings", json={"input": "x", "dimensions": 1536})
        assert wrong.status_code == 400
