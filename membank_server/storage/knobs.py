"""The search beam of a store as a runtime knob (``search.hnsw_ef`` of the tuner).

Qdrant Edge and a Qdrant server take the beam with every query, so a new value
applies to the next search. pgvector's ``hnsw.ef_search`` is a connection default
set when the pool opens: changing it takes a restart, so it has no knob here.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

__all__ = ["Knob", "search_ef_knob"]

#: Read the value, and set it (None: not live).
Knob = tuple[Callable[[], float], Callable[[float], None] | None]


def _loaded(module: str, name: str) -> Any:
    """A store class, if its module is loaded (a store of it exists only then): importing
    a store's module for an isinstance check would load its driver in every server."""
    found = sys.modules.get(module)
    return getattr(found, name, None) if found is not None else None


def search_ef_knob(store: object) -> Knob | None:
    """The knob of ``store``'s search beam, or None when it has none that is live."""
    edge_store = _loaded("membank_server.storage.edge", "EdgeStore")
    if edge_store is not None and isinstance(store, edge_store):
        import qdrant_edge as qe

        edge: Any = store

        def set_edge(value: float) -> None:
            edge._params = qe.SearchParams(hnsw_ef=int(value))

        return (lambda: float(edge._params.hnsw_ef or 0)), set_edge
    qdrant_store = _loaded("membank_server.storage.qdrant", "QdrantStore")
    if qdrant_store is not None and isinstance(store, qdrant_store):
        from qdrant_client import models

        qdrant: Any = store
        if qdrant._search_params is None:
            return None

        def set_qdrant(value: float) -> None:
            qdrant._search_params = models.SearchParams(hnsw_ef=int(value))

        return (lambda: float(getattr(qdrant._search_params, "hnsw_ef", 0) or 0)), set_qdrant
    return None
