"""How EdgeStore keeps and searches its dense vectors: int8 scalar quantization with
rescoring, and where the original float32 vectors live.

What Qdrant Edge 0.9 does with it (measured; README "Quantization"):

* Quantized vectors exist only in optimized (non-appendable) segments, built by
  ``optimize()``, and only for segments above the indexing threshold (about 10 MB of
  vectors); fresh writes sit in an appendable segment and are searched exactly.
* Where they exist, every search uses them, the HNSW path and the plain scan of a small
  tenant alike; without ``rescore`` the scores are the int8 approximations (about 4e-3
  off) and the top 10 loses about 3 %. With ``rescore`` the best ``limit x oversampling``
  candidates are scored again from the original vectors, so the scores are exact.
* The config is stored with the shard (``edge_config.json``); loading with another
  quantization is accepted and stored, and the next ``optimize()`` rebuilds the
  optimized segments to match (the original vectors are always kept, nothing is lost).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import qdrant_edge as qe

__all__ = ["QUANTILE", "VectorLayout", "note_change", "stored_quantization"]

_log = logging.getLogger("membank.storage")
#: The share of each dimension's values the int8 range covers (outliers are clipped).
QUANTILE = 0.99


@dataclass(frozen=True)
class VectorLayout:
    """The vectors' layout (``storage.edge.quantization``, ``quantization_oversampling``,
    ``original_vectors``).

    Args:
        quantization: ``scalar`` keeps an int8 copy of every vector in RAM and searches
            it; ``none`` searches the float32 vectors.
        oversampling: Candidates rescored from the original vectors, as a multiple of
            the limit (scalar only).
        on_disk: Keep the original vectors on disk, memory-mapped and read on demand,
            instead of cached in RAM (with ``scalar`` only rescoring reads them).
        rescore: Rescore from the original vectors; off only to measure what that buys
            (the recall test and ``membank bench memory``), never a setting.
    """

    quantization: Literal["scalar", "none"] = "scalar"
    oversampling: float = 2.0
    on_disk: bool = True
    rescore: bool = True

    @classmethod
    def of(
        cls, quantization: Literal["scalar", "none"], oversampling: float, originals: str
    ) -> VectorLayout:
        """From the settings; ``originals`` ``auto`` is on disk exactly when quantized."""
        on_disk = quantization == "scalar" if originals == "auto" else originals == "disk"
        return cls(quantization, oversampling, on_disk)

    def vector_params(self, dimension: int, distance: Any) -> Any:
        quantization = None
        if self.quantization == "scalar":
            quantization = qe.ScalarQuantizationConfig(
                qe.ScalarType.Int8, quantile=QUANTILE, memory=qe.Memory.Pinned
            )
        return qe.EdgeVectorParams(
            size=dimension,
            distance=distance,
            quantization_config=quantization,
            memory=qe.Memory.Cold if self.on_disk else qe.Memory.Cached,
        )

    def search_params(self, hnsw_ef: int) -> Any:
        # Rescoring is asked for even with quantization off: segments quantized before
        # the setting changed keep their int8 copy until the next optimize().
        quantization = qe.QuantizationSearchParams(
            rescore=self.rescore, oversampling=self.oversampling
        )
        return qe.SearchParams(hnsw_ef=hnsw_ef, quantization=quantization)


def note_change(path: Path, config: Any) -> None:
    """Log when the shard at ``path`` was built with another quantization than ``config``'s."""
    before = stored_quantization(path)
    wanted = config.vectors[""].quantization_config
    now = "none" if wanted is None else type(wanted).__name__.removesuffix("QuantizationConfig")
    if before is not None and before != now.lower():
        _log.warning(
            "storage.edge.quantization is %s but the collection at %s was built with %s: "
            "its indexed segments are rebuilt at the next optimize (membank collection "
            "optimize, or storage.edge.optimize_on_start); until then they are searched "
            "as they are, rescored from the original vectors",
            now.lower(),
            path,
            before,
        )


def stored_quantization(path: Path) -> str | None:
    """The quantization the shard at ``path`` was configured with (None: no shard)."""
    try:
        stored = json.loads((path / "edge_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    found = stored.get("quantization_config")
    for vector in (stored.get("vectors") or {}).values():
        found = vector.get("quantization_config") or found
    return next(iter(found)) if isinstance(found, dict) and found else "none"
