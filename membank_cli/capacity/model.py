"""RAM and disk a membank deployment needs for N memories, by backend and quantization.

The shape is the usual one (vectors x dimension x bytes per value, plus the
HNSW graph, plus payload, plus a fixed process), and every constant below was
either measured on this build or taken from the store's documentation, as
each comment says. RAM means what must stay resident for searches to be fast:
for the embedded store that is the server's RSS (its segments are mmap'd and
wholly resident at these sizes), for pgvector the server's RSS plus the HNSW
index PostgreSQL must keep in its buffers or the page cache.

Measured (2026-11-25, 2 vCPU, 384-d client vectors, 500 users, the bodies of
:func:`membank_cli.capacity.calibrate.memory_body`: 118-character content,
three metadata keys, a 794-byte stored payload)::

    membank capacity calibrate --backend edge --at 10000,25000,50000,75000,100000
    memories   RSS MiB (file-backed)  disk MiB   RSS B/memory  disk B/memory (vs 0)
    0            304.6  ( 74.2)          0.3
    10,000       465.0  (124.4)         55.1        16,820        5,745
    25,000       516.6  (164.3)        135.2         8,895        5,658
    50,000       596.3  (220.6)        201.1         6,118        4,211
    75,000       705.1  (277.1)        267.9         5,600        3,742
    100,000      782.8  (333.3)        334.4         5,015        3,503
    marginal 25k-100k: 3,721 B RSS and 2,785 B disk per memory.

That is this build, where history lives in its own SQLite file beside the shard
and every point carries check values. Before both (same command, same bodies) the
marginals were 3,408 B RSS and 2,548 B disk, 274.1 MiB of disk at 100k, and the
first writes' step 70 MiB; the pgvector figures below are from that build.

    membank capacity calibrate --backend pgvector --pg-dsn $MBTEST_PG_DSN --at 10000,50000,100000
    memories   server RSS MiB   schema on disk MiB   of it HNSW index MiB   disk B/memory
    0             292.7              0.1                  0.0
    10,000        360.2             44.5                 19.5                 4,657
    50,000        360.2            222.0                 97.7                 4,654
    100,000       360.2            444.3                195.3                 4,657
    (PostgreSQL 18 + pgvector from scripts/services; the server's RSS stays flat: the
    store's memory is PostgreSQL's, and the HNSW index is what it must keep cached)

``tests/integration/test_capacity_model.py`` repeats the 50k point on every run
(RAM a memory within 25 %, disk within 15 %, the empty server within 25 %); at
writing it measured 6,143 B RAM and 4,204 B disk a memory against the model's
6,300 and 4,232.

The first writes add a step of about 123 MiB to the embedded server's RSS that
does not grow after (allocator arenas holding 4 MB batch bodies, the writer's
groups, the first segment's buffers, the history database's pages):
:data:`WRITE_WORKING_SET`; 70 MiB for a server on pgvector. Qdrant server figures are
the edge figures (the same segment engine) plus the HNSW graph a server builds
once a segment passes its indexing threshold; they were not measured here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "BACKENDS",
    "QUANTIZATIONS",
    "WRITE_WORKING_SET",
    "Backend",
    "MemoryModel",
    "Quantization",
]

Backend = Literal["edge", "qdrant", "pgvector"]
Quantization = Literal["none", "scalar", "binary"]
BACKENDS: tuple[Backend, ...] = ("edge", "qdrant", "pgvector")
QUANTIZATIONS: tuple[Quantization, ...] = ("none", "scalar", "binary")

MiB = 1024 * 1024

#: RSS of a started server with no memory: Python, Litestar, the int8 ONNX MiniLM
#: embedder and its tokenizer (74 MiB of it file-backed), the store client. Measured.
PROCESS_BASE = 305 * MiB
#: The step the first writes add to the RSS, flat from 25k memories on. Measured.
WRITE_WORKING_SET = 123 * MiB
#: The same step for a server on pgvector (its store's memory is PostgreSQL's). Measured.
PG_WRITE_WORKING_SET = 70 * MiB
#: Stored bytes that do not depend on the content: ids, timestamps, hash, state, the
#: ADD entry's envelope. Measured when history still lived in the payload: 794 B for
#: 118 + 52 B content and metadata, each stored twice (the record and its history
#: entry); history now has its own file, and the residuals below were measured after.
PAYLOAD_FIXED = 454
#: Per point, resident besides vector and payload: id tracker, versions, check values,
#: the user_id and agent_id keyword indexes. Edge: 3,721 marginal - 1,536 vector - 794
#: payload.
QDRANT_POINT_RAM = 1391
#: Per point on disk besides vector and payload (id tracker, versions, check values,
#: index files, the history row's keys). Edge: 2,785 marginal - 1,536 - 794.
QDRANT_POINT_DISK = 455
#: WAL, preallocated segment files and the history database: disk at 25k-100k minus
#: the marginal. Measured.
QDRANT_DISK_FIXED = 69 * MiB
#: HNSW graph: 2m links of 4 bytes on layer 0, ~10 % more for the upper layers
#: (Qdrant's own sizing guidance).
HNSW_UPPER_LAYERS = 1.1
#: Scalar int8 keeps one float per vector beside the bytes (offset/scale).
SCALAR_EXTRA = 4

#: pgvector: the memory row without its vector plus the history row and the btree
#: indexes, less the content and metadata they each hold. Measured: 4,657 B a memory
#: on disk = 2,048 HNSW + 1,544 vector column + 1,065, of which 2 x 170 content.
PG_ROWS_FIXED = 725
#: pgvector HNSW pages: 8 KiB, 24 bytes of page header; an element tuple carries the
#: vector, a varlena header and about 80 bytes of heap ids and level data, and its
#: neighbour tuple 6 bytes a link for 2m links on layer 0 (pgvector's hnsw.h). Tuples
#: do not span pages, so the bytes per vector are the page over the tuples it holds.
#: At 384-d, m=16 this gives 4 a page, 2,048 B a vector: what was measured.
PG_PAGE, PG_PAGE_HEADER, PG_ELEMENT_FIXED, PG_NEIGHBOR_FIXED = 8192, 24, 88, 24
#: The server with no store in process (no Qdrant Edge), measured: 292.7 MiB.
PG_PROCESS_BASE = 293 * MiB
#: Migrations, catalog and the empty tables. Measured.
PG_FIXED_DISK = 0.1 * MiB


@dataclass(frozen=True)
class MemoryModel:
    """Footprint of one collection on one backend, per memory and in total.

    Args:
        backend: ``edge`` (embedded, no HNSW built while serving), ``qdrant``
            (server, HNSW built) or ``pgvector`` (HNSW index in PostgreSQL).
        dimension: Vector size.
        quantization: ``none``; ``scalar`` (int8 in Qdrant, halfvec in pgvector);
            ``binary`` (1 bit per value, originals on disk for rescoring).
        content_bytes: Average content length (UTF-8 bytes).
        metadata_bytes: Average metadata JSON length.
        hnsw_m: HNSW links per node (``hnsw_m`` setting).
    """

    backend: Backend = "edge"
    dimension: int = 384
    quantization: Quantization = "none"
    content_bytes: float = 118.0
    metadata_bytes: float = 52.0
    hnsw_m: int = 16
    #: Edge builds its graph only when asked or past ``storage.edge.build_threshold``.
    hnsw_built: bool = field(default=False)

    def __post_init__(self) -> None:
        if self.backend != "edge":
            object.__setattr__(self, "hnsw_built", True)

    @property
    def payload_bytes(self) -> float:
        return PAYLOAD_FIXED + 2 * (self.content_bytes + self.metadata_bytes)

    @property
    def full_vector_bytes(self) -> int:
        return self.dimension * 4

    @property
    def resident_vector_bytes(self) -> float:
        """The vector bytes searches need in RAM (the quantized copy when quantized)."""
        if self.quantization == "binary":
            return math.ceil(self.dimension / 8)
        if self.quantization == "scalar":
            # pgvector's halfvec keeps 2 bytes a value; Qdrant's int8 one and a scale.
            return (
                self.dimension * 2 if self.backend == "pgvector" else self.dimension + SCALAR_EXTRA
            )
        return self.full_vector_bytes

    @property
    def hnsw_bytes(self) -> float:
        return 2 * self.hnsw_m * 4 * HNSW_UPPER_LAYERS if self.hnsw_built else 0.0

    @property
    def pg_index_bytes(self) -> float:
        """Bytes a vector takes in a pgvector HNSW index (``halfvec`` when scalar)."""
        element = PG_ELEMENT_FIXED + self.resident_vector_bytes
        neighbours = PG_NEIGHBOR_FIXED + 2 * self.hnsw_m * 6
        per_page = max(1, (PG_PAGE - PG_PAGE_HEADER) // (element + neighbours))
        return PG_PAGE / per_page

    def breakdown(self) -> dict[str, float]:
        """Bytes per memory, resident, by part."""
        if self.backend == "pgvector":
            return {"HNSW index (vectors and graph)": self.pg_index_bytes}
        parts = {
            "vectors": float(self.resident_vector_bytes),
            "graph": self.hnsw_bytes,
            "bookkeeping": float(QDRANT_POINT_RAM),
        }
        # Payload is mmap'd and read for every hit; on the embedded store it is resident.
        parts["payload"] = self.payload_bytes
        return parts

    def ram_per_memory(self) -> float:
        return sum(self.breakdown().values())

    def disk_per_memory(self) -> float:
        if self.backend == "pgvector":
            content = 2 * (self.content_bytes + self.metadata_bytes)
            return self.pg_index_bytes + self.full_vector_bytes + 8 + PG_ROWS_FIXED + content
        quantized = self.resident_vector_bytes if self.quantization != "none" else 0
        return (
            self.full_vector_bytes
            + quantized
            + self.payload_bytes
            + QDRANT_POINT_DISK
            + (self.hnsw_bytes)
        )

    @property
    def process_bytes(self) -> float:
        """RSS of a started server that has not written yet."""
        return float(PG_PROCESS_BASE if self.backend == "pgvector" else PROCESS_BASE)

    def fixed_ram(self) -> float:
        step = PG_WRITE_WORKING_SET if self.backend == "pgvector" else WRITE_WORKING_SET
        return self.process_bytes + step

    def fixed_disk(self) -> float:
        return float(PG_FIXED_DISK if self.backend == "pgvector" else QDRANT_DISK_FIXED)

    def ram_bytes(self, memories: float) -> float:
        """RAM for ``memories`` memories, the process included."""
        return self.fixed_ram() + memories * self.ram_per_memory()

    def disk_bytes(self, memories: float) -> float:
        return self.fixed_disk() + memories * self.disk_per_memory()

    def memories_fitting(self, ram_bytes: float, disk_bytes: float) -> float:
        """How many memories fit in ``ram_bytes`` of RAM and ``disk_bytes`` of disk."""
        by_ram = (ram_bytes - self.fixed_ram()) / self.ram_per_memory()
        by_disk = (disk_bytes - self.fixed_disk()) / self.disk_per_memory()
        return max(0.0, min(by_ram, by_disk))
