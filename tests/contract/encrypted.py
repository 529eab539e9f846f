"""What the EncryptedStore contract modules share: the stores they run on (conftest's
``open_store``; its ``enc`` fixture wraps them)."""

from __future__ import annotations

import pytest

__all__ = ["on_stores"]

#: The hybrids cover both kinds of store at once.
_BACKENDS = ["edge", "qdrant", "pgvector", "hybrid-both", "hybrid-async"]
on_stores = pytest.mark.parametrize("open_store", _BACKENDS, indirect=True)
