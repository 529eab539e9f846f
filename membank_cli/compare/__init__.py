"""``membank bench compare``: one workload against membank and against mem0, side by side.

``workload`` makes the texts and questions, ``measure`` runs the same phases on
either side, ``membank_side`` drives a server over HTTP, ``mem0_side`` drives
mem0 as a library in a process of its own (loopback-only network), and
``embed_server`` gives mem0 membank's own ONNX embedder behind an
OpenAI-compatible ``/v1/embeddings``, and ``run`` runs both sides; the verb is
:mod:`membank_cli.bench.compare`.
"""
