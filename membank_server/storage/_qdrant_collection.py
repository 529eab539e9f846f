"""A Qdrant collection's layout: how membank creates and checks it, describes it, and
turns its conditions into Qdrant filters."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from qdrant_client import AsyncQdrantClient, models

from membank_server.domain.errors import ConfigError, StorageUnavailable
from membank_server.domain.model import CollectionInfo
from membank_server.storage._lexical import LEXICAL
from membank_server.storage._payload import INDEXED_KEYWORDS, INDEXED_NUMBERS, Cond

__all__ = ["DISTANCES", "QUANTIZATIONS", "Layout", "qdrant_filter"]

_log = logging.getLogger("membank.storage")

Call = Callable[[str, Callable[[AsyncQdrantClient], Awaitable[Any]]], Awaitable[Any]]

DISTANCES = {
    "cosine": models.Distance.COSINE,
    "dot": models.Distance.DOT,
    "euclid": models.Distance.EUCLID,
}
QUANTIZATIONS: dict[str, models.QuantizationConfig] = {
    "scalar": models.ScalarQuantization(
        scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8, always_ram=True)
    ),
    "binary": models.BinaryQuantization(binary=models.BinaryQuantizationConfig(always_ram=True)),
}


def _condition(c: Cond) -> models.Condition:
    if c.op == "eq":
        return models.FieldCondition(key=c.key, match=models.MatchValue(value=c.value))
    if c.op == "any":
        strings = [v for v in c.value if isinstance(v, str)]
        numbers = [v for v in c.value if not isinstance(v, str)]
        if strings and numbers:
            # MatchAny takes values of one type; a mixed list is either of two.
            return models.Filter(
                should=[
                    models.FieldCondition(key=c.key, match=models.MatchAny(any=strings)),
                    models.FieldCondition(key=c.key, match=models.MatchAny(any=numbers)),
                ]
            )
        return models.FieldCondition(key=c.key, match=models.MatchAny(any=list(c.value)))
    if c.op == "set":
        return models.Filter(
            must_not=[models.IsEmptyCondition(is_empty=models.PayloadField(key=c.key))]
        )
    return models.FieldCondition(key=c.key, range=models.Range(gte=c.gte, lte=c.lte, gt=c.gt))


def qdrant_filter(conds: Sequence[Cond]) -> models.Filter:
    """Every condition must hold."""
    return models.Filter(must=[_condition(c) for c in conds])


@dataclass(frozen=True)
class Layout:
    """The collection as settings describe it: vectors, index and cluster parameters.

    ``local`` (qdrant-client's local mode) scans everything and warns that payload
    indexes do nothing, so none are made there.
    """

    name: str
    dimension: int
    distance: str
    local: bool
    on_disk: bool = False
    #: ``create_collection``'s other parameters (HNSW, quantization, shards).
    params: dict[str, Any] = field(default_factory=dict)
    #: Whether the collection has the lexical sparse vector (set by ``ensure``): one
    #: made before lexical search has not, and a vector cannot be added to it.
    lexical: list[bool] = field(default_factory=lambda: [True])

    @property
    def vectors(self) -> models.VectorParams:
        return models.VectorParams(
            size=self.dimension, distance=DISTANCES[self.distance], on_disk=self.on_disk
        )

    async def ensure(self, call: Call) -> None:
        """Create the collection unless it exists; check its vectors; add missing
        payload indexes.

        Raises:
            ConfigError: it exists with other vectors.
            StorageUnavailable: the server cannot answer.
        """
        name = self.name

        async def exists() -> bool:
            return bool(await call("find the collection", lambda c: c.collection_exists(name)))

        if not await exists():
            try:
                await call(
                    "create the collection",
                    lambda c: c.create_collection(
                        name,
                        vectors_config=self.vectors,
                        sparse_vectors_config={
                            LEXICAL: models.SparseVectorParams(modifier=models.Modifier.IDF)
                        },
                        **self.params,
                    ),
                )
            except StorageUnavailable:
                # Another membank instance may have created it since we looked.
                if not await exists():
                    raise
        info = await call("read the collection", lambda c: c.get_collection(name))
        self._check(info)
        if not self.local:
            await self._index(call, info)

    def _check(self, info: Any) -> None:
        vectors = info.config.params.vectors
        if not isinstance(vectors, models.VectorParams):
            raise ConfigError(
                f"qdrant collection {self.name!r} has named vectors; membank needs one"
            )
        if vectors.size != self.dimension or vectors.distance != self.vectors.distance:
            raise ConfigError(
                f"qdrant collection {self.name!r} has vectors of size {vectors.size} "
                f"({vectors.distance.value}), but storage is set to dimension "
                f"{self.dimension} ({self.vectors.distance.value})"
            )
        self.lexical[0] = LEXICAL in (info.config.params.sparse_vectors or {})
        if not self.lexical[0]:
            _log.warning(
                "qdrant collection %r was made before lexical search: its lexical searches "
                "find nothing (hybrid ones are dense): drop it and rebuild it from another "
                "store (`membank storage reindex`) to index it",
                self.name,
            )

    async def _index(self, call: Call, info: Any) -> None:
        tenant = models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True)
        wanted: dict[str, models.PayloadSchemaType | models.KeywordIndexParams] = {
            "user_id": tenant,
            **{key: models.PayloadSchemaType.KEYWORD for key in INDEXED_KEYWORDS},
            **{key: models.PayloadSchemaType.FLOAT for key in INDEXED_NUMBERS},
        }
        for key, schema in wanted.items():
            if key not in info.payload_schema:
                await call(
                    f"index {key}",
                    partial(
                        AsyncQdrantClient.create_payload_index,
                        collection_name=self.name,
                        field_name=key,
                        field_schema=schema,
                        wait=True,
                    ),
                )

    def describe(self, info: Any) -> CollectionInfo:
        """The collection's description from ``get_collection``."""
        hnsw = info.config.hnsw_config
        quantization = info.config.quantization_config
        return CollectionInfo(
            backend="qdrant",
            name=self.name,
            dimension=self.dimension,
            distance=self.distance,
            points=int(info.points_count or 0),
            indexed_vectors=int(info.indexed_vectors_count or 0),
            segments=int(info.segments_count),
            extra={
                "status": info.status.value,
                "quantization": (
                    type(quantization).__name__.removesuffix("Quantization").lower()
                    if quantization
                    else None
                ),
                "hnsw": {"m": hnsw.m, "ef_construct": hnsw.ef_construct, "on_disk": hnsw.on_disk},
                "local": self.local,
                "payload_indexes": sorted(info.payload_schema),
            },
        )
