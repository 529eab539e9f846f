"""Embedding providers, adapters of the ``Embedder`` port.

- :class:`OnnxEmbedder`: the offline default, all-MiniLM-L6-v2 (int8 ONNX) on the CPU.
- :class:`OpenAIEmbedder`: any OpenAI-compatible ``/embeddings`` endpoint over HTTP.
"""

from __future__ import annotations

from membank_server.embeddings.onnx import OnnxEmbedder
from membank_server.embeddings.openai import OpenAIEmbedder

__all__ = ["OnnxEmbedder", "OpenAIEmbedder"]
