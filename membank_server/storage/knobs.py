"""The search beam of a store as a runtime knob (``search.hnsw_ef`` of the tuner).

Qdrant Edge and a Qdrant server take the beam with every query, so a new value
applies to the next search. pgvector's ``hnsw.ef_search`` is a connection default
set when the pool opens: changing it takes a restart, so it has no knob here.
"""

from __future__ import annotations

from collections.abc import Callable

import qdrant_edge as qe
from qdrant_client import models

from membank_server.storage.edge import EdgeStore
from membank_server.storage.qdrant import QdrantStore

__all__ = ["Knob", "search_ef_knob"]

#: Read the value, and set it (None: not live).
Knob = tuple[Callable[[], float], Callable[[float], None] | None]


def search_ef_knob(store: object) -> Knob | None:
    """The knob of ``store``'s search beam, or None when it has none that is live."""
    if isinstance(store, EdgeStore):
        edge = store

        def set_edge(value: float) -> None:
            edge._params = qe.SearchParams(hnsw_ef=int(value))

        return (lambda: float(edge._params.hnsw_ef or 0)), set_edge
    if isinstance(store, QdrantStore) and store._search_params is not None:
        qdrant = store

        def set_qdrant(value: float) -> None:
            qdrant._search_params = models.SearchParams(hnsw_ef=int(value))

        return (lambda: float(getattr(qdrant._search_params, "hnsw_ef", 0) or 0)), set_qdrant
    return None
