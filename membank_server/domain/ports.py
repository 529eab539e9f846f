"""The ports the services work through; adapters implement them."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable
from uuid import UUID

from membank_server.domain.backup import BackupTarget
from membank_server.domain.backup_ports import (
    BackupAlerts,
    BackupArchive,
    BackupReader,
    BackupWriter,
    DatabaseDump,
    DurableCounts,
    SealedFields,
    Snapshot,
    Snapshots,
)
from membank_server.domain.integrity import IntegrityReport
from membank_server.domain.jobs import JobQueue
from membank_server.domain.llm import LanguageModel
from membank_server.domain.model import (
    CollectionInfo,
    DiskState,
    HistoryEvent,
    Memory,
    MemoryRecord,
    Page,
    SearchHit,
    Usage,
    VectorQuery,
)
from membank_server.domain.retrieval import Analyzer, Reranker
from membank_server.domain.security_ports import AuditLog, KeyStore, Resealable, Throttle

__all__ = [
    "Analyzer",
    "AuditLog",
    "BackupAlerts",
    "BackupArchive",
    "BackupReader",
    "BackupTarget",
    "BackupWriter",
    "Cache",
    "DatabaseDump",
    "DurableCounts",
    "Embedder",
    "FolderLock",
    "Generations",
    "JobQueue",
    "KeyStore",
    "LanguageModel",
    "MemoryStore",
    "PopularQueries",
    "Reranker",
    "Resealable",
    "SealedFields",
    "Snapshot",
    "Snapshots",
    "SpaceAware",
    "Throttle",
]


class Embedder(Protocol):
    """Turns texts into unit-length vectors of a fixed dimension."""

    @property
    def model(self) -> str:
        """A name that changes whenever the vectors would (model + version)."""
        ...

    @property
    def dimension(self) -> int: ...

    async def start(self) -> None:
        """Load the model or open the client; ready to embed after this returns."""
        ...

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed texts in order, batching internally.

        Raises:
            EmbedderUnavailable: the model or provider cannot answer.
        """
        ...

    async def aclose(self) -> None: ...


class MemoryStore(Protocol):
    """Durable storage and vector search of memory records, partitioned by user.

    Every method that reads takes the ``user_id`` it reads for and never returns
    another user's record. A write returns only once it is durable.
    All methods raise ``StorageUnavailable`` when the backend cannot answer.

    History lives apart from records (see ``MemoryRecord``): a store keeps the last
    ``history_limit`` versions of each memory's history, pruning older events when
    it writes newer ones.
    """

    @property
    def backend(self) -> str: ...

    async def start(self) -> None:
        """Open the store and create the collection and its indexes if missing."""
        ...

    async def aclose(self) -> None: ...

    async def upsert(
        self, records: Sequence[MemoryRecord], *, claims: Collection[UUID] = ()
    ) -> None:
        """Write records (memory, vector, tombstone) and add their history events, durably.

        ``claims`` are ids the caller takes for its record's user for the first time
        (a client-chosen id). Taking one is atomic: when another user owns it, or
        takes it concurrently, exactly one of the two writes succeeds and the other
        raises ``Conflict`` (``details["ids"]``) without overwriting anything of the
        owner's. Records not claimed are written as given (the caller read them as
        its user's own; a copy, a restore and a secondary store follow a primary).
        """
        ...

    async def get(self, user_id: str, memory_ids: Sequence[UUID]) -> dict[UUID, MemoryRecord]:
        """Records by id for this user, tombstones included, without history; missing
        ids are absent."""
        ...

    async def history(
        self, user_id: str, memory_id: UUID, *, all_versions: bool = False
    ) -> tuple[HistoryEvent, ...]:
        """The kept history of one of the user's memories, oldest first; empty if none.

        Events newer than the record (a write cut off between the two) are left out,
        unless ``all_versions``: every event kept, even without a record (repair).
        """
        ...

    async def usage(self, user_id: str) -> Usage:
        """The user's live memories and their bytes (``stored_bytes``), for quotas."""
        ...

    async def owners(self, memory_ids: Sequence[UUID]) -> dict[UUID, str]:
        """The user owning each existing id, to refuse an id taken by another user."""
        ...

    async def find_by_hash(
        self, pairs: Sequence[tuple[str, str]], now: datetime
    ) -> dict[tuple[str, str], Memory]:
        """Live memories by (user_id, content_hash)."""
        ...

    async def list_page(
        self,
        user_id: str,
        *,
        now: datetime,
        limit: int,
        cursor: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
    ) -> Page:
        """Live memories of a user in ascending id order, a page at a time."""
        ...

    async def search(self, query: VectorQuery) -> list[SearchHit]:
        """Nearest live memories of one user, best first."""
        ...

    async def search_lexical(self, query: VectorQuery) -> list[SearchHit]:
        """Live memories of one user holding any of ``query.terms``, best first (a
        BM25-style score; ``query.vector`` and ``min_score`` are not used).

        Every write keeps the lexical index in step: a record's terms are its
        ``terms`` when given, else the store's analysis of its content.
        """
        ...

    async def rank(self, query: VectorQuery, *, lexical: bool = False) -> list[tuple[UUID, float]]:
        """The ids and scores ``search`` (with ``lexical``, ``search_lexical``) would give,
        best first, reading no memory: a fused search ranks many candidates and reads
        only the few it keeps (``get``)."""
        ...

    async def delete_user(self, user_id: str) -> int:
        """Erase every record of a user, history included; returns how many live ones."""
        ...

    async def purge_expired(self, now: datetime) -> int:
        """Erase records whose ``expires_at`` has passed."""
        ...

    async def count(self, user_id: str | None = None) -> int:
        """Live (not deleted) memories, of one user or of all."""
        ...

    async def info(self) -> CollectionInfo: ...

    async def drop(self) -> None:
        """Remove the collection and its data."""
        ...

    async def optimize(self) -> bool:
        """Build pending vector indexes now; False when there was nothing to do."""
        ...

    async def scan(
        self, cursor: str | None = None, limit: int = 500
    ) -> tuple[list[MemoryRecord], str | None]:
        """Every record of every user (tombstones too, vectors included), in id order.

        For operators only (``storage verify``, ``storage reindex``), never for a request.
        A record that fails its integrity check is left out (and logged); ``verify``
        lists it.
        """
        ...

    async def verify(self, progress: Callable[[int], None] | None = None) -> IntegrityReport:
        """Check every record against its check values (``domain.integrity``), and list
        the damaged ones and the memories whose history outlived their record."""
        ...

    async def discard(self, memory_ids: Sequence[UUID]) -> None:
        """Remove records and their history by id, in whatever state they are (repair)."""
        ...


class Cache(Protocol):
    """A byte cache with TTLs; one level of the tiered cache (L1, L2 or L3).

    Implementations never raise on a miss; a backend that cannot answer raises
    ``CacheUnavailable`` (the tiered cache treats that level as a miss and skips it).
    """

    @property
    def name(self) -> str:
        """The level's label in metrics: ``l1``, ``l2`` or ``l3``."""
        ...

    async def get(self, key: str) -> bytes | None: ...

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]: ...

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None: ...

    async def delete(self, keys: Sequence[str]) -> None: ...

    async def clear(self, prefix: str = "") -> int:
        """Remove every entry whose key starts with ``prefix``; returns how many."""
        ...

    async def aclose(self) -> None: ...


class Generations(Protocol):
    """A counter per user, bumped on every write, that cache keys include.

    A read builds its cache key with the user's current generation, so entries
    written before the user's last change are never read again, on any instance.
    """

    async def current(self, keys: Sequence[str]) -> list[int]:
        """The counters of several users (one round trip); 0 for one never bumped."""
        ...

    async def bump(self, key: str) -> int: ...

    async def aclose(self) -> None: ...


class PopularQueries(Protocol):
    """Counts searches per (user, query) in time windows, for cache warmup."""

    async def record(self, user_id: str, query: bytes) -> None: ...

    async def top(self, k: int) -> list[tuple[str, bytes, float]]:
        """The ``k`` most asked (user_id, query, count) of the current and last window."""
        ...

    async def aclose(self) -> None: ...


class FolderLock(Protocol):
    """One owning process for a data folder, taken before anything in it is opened."""

    def acquire(self) -> None:
        """Take it, or raise ``StorageUnavailable`` naming the process that has it."""
        ...

    def release(self) -> None: ...


@runtime_checkable
class SpaceAware(Protocol):
    """A store on a local disk that refuses writes when the disk is nearly full."""

    def disk_state(self) -> DiskState: ...
