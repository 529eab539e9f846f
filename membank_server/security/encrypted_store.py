"""EncryptedStore: field-level AES-256-GCM around any MemoryStore.

Sealed with the ring's active key on every write: ``memory.content``, every history
event's content, the values of the chosen metadata keys (JSON-encoded first, so any
JSON value comes back as it went in) in the memory and in each history event, and
the record's ``idempotency`` digest (a plain SHA-256 of the request, content included).
The AAD of a field is ``"<memory id>|<user id>|<field>"``, field being ``content``,
``metadata.<key>``, ``history.<version>.content``, ``history.<version>.metadata.<key>``
or ``idempotency``: a ciphertext copied to another row, user or field does not open
(IntegrityError).
``content_hash`` is stored as the ring's keyed hash of the plain digest, so exact
duplicates are still found without storing a dictionary-attackable hash.

Not encrypted: vectors (search needs them in clear, and an embedding does reveal
something of its text), ids, user/agent/session ids, timestamps, the names of
metadata keys and the values of metadata keys not chosen. A chosen metadata key
cannot be filtered on in a search (InvalidInput).

The lexical index never sees a plaintext term: each term of the content (the
analyser's, from the plaintext) is replaced by a keyed hash,
``HMAC-SHA256(index_key, "term|<user id>|<term>")`` cut to 80 bits, and so is each
term of a lexical query. What that leaks to someone holding the store: per memory,
how many terms it has, how often each repeats and (PostgreSQL) in which order, and
which memories of one user share a term; across users nothing, as the user id is
in the hash. Not which words they are, without the index key.

Rows written before encryption was turned on hold plain values: they are read as
they are, and sealed at their next write or by a rotation (``DataKeyRotation``);
until then, exact-duplicate detection does not see them. Only the keys listed in
``metadata_keys`` are opened on read (a user's value that merely looks sealed stays
as it is), so a key once listed must stay listed while any value of it is sealed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any
from uuid import UUID

from membank_server.domain.errors import IntegrityError, InvalidInput
from membank_server.domain.integrity import IntegrityReport
from membank_server.domain.model import (
    CollectionInfo,
    HistoryEvent,
    Memory,
    MemoryRecord,
    Page,
    SearchHit,
    Usage,
    VectorQuery,
    content_hash,
)
from membank_server.domain.ports import Analyzer, MemoryStore
from membank_server.security.crypto import KeyRing

__all__ = ["PLAINTEXT", "EncryptedStore"]

#: The ``key_usage`` entry counting records with a field that is not sealed yet.
PLAINTEXT = "plaintext"
#: What a backup seals with each data key (and hashes with the index key) to check
#: that a restoring server holds the same keys.
_KEY_CHECK = "membank-backup data key check"

_Crypt = Callable[[str, str], str]  # (value, field) -> value


def _aad(memory: Memory) -> Callable[[str], bytes]:
    prefix = f"{memory.id}|{memory.user_id}|"
    return lambda name: (prefix + name).encode("utf-8")


class EncryptedStore:
    """A :class:`~membank_server.domain.ports.MemoryStore` that seals fields before the
    inner store sees them, and the :class:`~membank_server.domain.ports.Resealable` port.

    Args:
        inner: The store that keeps the sealed records.
        ring: The data keys; new writes use its active key.
        metadata_keys: Metadata keys whose values are sealed too.
        analyzer: The lexical analysis (the stores' own), run here on the plaintext.
    """

    def __init__(
        self,
        inner: MemoryStore,
        ring: KeyRing,
        *,
        metadata_keys: Sequence[str] = (),
        analyzer: Analyzer,
    ) -> None:
        self.inner = inner
        self.ring = ring
        self.metadata_keys = frozenset(metadata_keys)
        self.analyzer = analyzer

    @property
    def backend(self) -> str:
        return self.inner.backend

    # -- sealing -------------------------------------------------------------

    def _crypt_record(self, r: MemoryRecord, crypt: _Crypt, meta: _Crypt) -> MemoryRecord:
        return replace(
            r,
            memory=self._crypt_memory(r.memory, crypt, meta),
            history=tuple(self._crypt_event(h, crypt, meta) for h in r.history),
            idempotency=None if r.idempotency is None else crypt(r.idempotency, "idempotency"),
        )

    def _crypt_memory(self, m: Memory, crypt: _Crypt, meta: _Crypt) -> Memory:
        return replace(
            m,
            content=crypt(m.content, "content"),
            metadata=self._crypt_metadata(m.metadata, "metadata", meta),
        )

    def _crypt_event(self, h: HistoryEvent, crypt: _Crypt, meta: _Crypt) -> HistoryEvent:
        where = f"history.{h.version}"
        return replace(
            h,
            content=crypt(h.content, f"{where}.content"),
            metadata=self._crypt_metadata(h.metadata, f"{where}.metadata", meta),
        )

    def _crypt_metadata(
        self, metadata: Mapping[str, Any], where: str, meta: _Crypt
    ) -> Mapping[str, Any]:
        if not self.metadata_keys.intersection(metadata):
            return metadata
        return {
            k: meta(v, f"{where}.{k}") if k in self.metadata_keys else v
            for k, v in metadata.items()
        }

    def _seal(self, r: MemoryRecord) -> MemoryRecord:
        aad = _aad(r.memory)

        def crypt(value: str, name: str) -> str:
            return self.ring.seal(value, aad(name))

        def meta(value: Any, name: str) -> str:
            return crypt(json.dumps(value, ensure_ascii=False, separators=(",", ":")), name)

        sealed = self._crypt_record(r, crypt, meta)
        digest = self.ring.index(f"{r.memory.user_id}|{r.memory.content_hash}")
        terms = r.terms if r.terms is not None else self.analyzer.terms(r.memory.content)
        return replace(
            sealed,
            memory=replace(sealed.memory, content_hash=digest),
            terms=() if r.deleted_at is not None else self._keyed(r.memory.user_id, terms),
        )

    def _keyed(self, user_id: str, terms: Sequence[str]) -> tuple[str, ...]:
        """Terms as keyed hashes (module docs), one per distinct term."""
        hashes = {t: self.ring.index(f"term|{user_id}|{t}")[:20] for t in set(terms)}
        return tuple(hashes[t] for t in terms)

    def _openers(self, m: Memory) -> tuple[_Crypt, _Crypt]:
        aad = _aad(m)

        def crypt(value: str, name: str) -> str:
            # Not a sealed token: a row written before encryption was turned on.
            return self.ring.open(value, aad(name)) if KeyRing.is_sealed(value) else value

        def meta(value: Any, name: str) -> Any:
            return json.loads(crypt(value, name)) if KeyRing.is_sealed(value) else value

        return crypt, meta

    def _open(self, r: MemoryRecord) -> MemoryRecord:
        opened = self._crypt_record(r, *self._openers(r.memory))
        return replace(opened, memory=_rehash(opened.memory))

    def _open_memory(self, m: Memory) -> Memory:
        return _rehash(self._crypt_memory(m, *self._openers(m)))

    # -- MemoryStore -----------------------------------------------------------

    async def start(self) -> None:
        await self.inner.start()

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def upsert(
        self, records: Sequence[MemoryRecord], *, claims: Collection[UUID] = ()
    ) -> None:
        await self.inner.upsert([self._seal(r) for r in records], claims=claims)

    async def history(
        self, user_id: str, memory_id: UUID, *, all_versions: bool = False
    ) -> tuple[HistoryEvent, ...]:
        events = await self.inner.history(user_id, memory_id, all_versions=all_versions)
        if not events:
            return events
        # The AAD names the memory and its user, which the caller gave and the inner
        # store matched: a sealed event copied from another memory does not open.
        stub = Memory(memory_id, user_id, "", {}, events[0].at, events[0].at, 0, "")
        crypt, meta = self._openers(stub)
        return tuple(self._crypt_event(h, crypt, meta) for h in events)

    async def usage(self, user_id: str) -> Usage:
        return await self.inner.usage(user_id)

    async def verify(self, progress: Callable[[int], None] | None = None) -> IntegrityReport:
        """The inner store's checks; sealed values are authenticated when opened."""
        return await self.inner.verify(progress)

    async def discard(self, memory_ids: Sequence[UUID]) -> None:
        await self.inner.discard(memory_ids)

    async def get(self, user_id: str, memory_ids: Sequence[UUID]) -> dict[UUID, MemoryRecord]:
        found = await self.inner.get(user_id, memory_ids)
        return {i: self._open(r) for i, r in found.items()}

    async def owners(self, memory_ids: Sequence[UUID]) -> dict[UUID, str]:
        return await self.inner.owners(memory_ids)

    async def find_by_hash(
        self, pairs: Sequence[tuple[str, str]], now: datetime
    ) -> dict[tuple[str, str], Memory]:
        # Only the keyed hash is asked for: the plain digest never reaches the backend.
        # Keyed by user too: equal contents of two users do not show as equal hashes.
        asked = {
            (user_id, self.ring.index(f"{user_id}|{digest}")): (user_id, digest)
            for user_id, digest in pairs
        }
        found = await self.inner.find_by_hash(list(asked), now)
        return {asked[key]: self._open_memory(m) for key, m in found.items() if key in asked}

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
        page = await self.inner.list_page(
            user_id,
            now=now,
            limit=limit,
            cursor=cursor,
            agent_id=agent_id,
            session_id=session_id,
        )
        return replace(page, items=tuple(self._open_memory(m) for m in page.items))

    def _check_filters(self, query: VectorQuery) -> None:
        for condition in query.filters.metadata:
            if condition.key in self.metadata_keys:
                raise InvalidInput(
                    f"metadata key {condition.key!r} is encrypted and cannot be filtered on",
                    {"field": f"filters.metadata.{condition.key}"},
                )

    async def search(self, query: VectorQuery) -> list[SearchHit]:
        self._check_filters(query)
        hits = await self.inner.search(query)
        return [replace(h, memory=self._open_memory(h.memory)) for h in hits]

    async def search_lexical(self, query: VectorQuery) -> list[SearchHit]:
        self._check_filters(query)
        keyed = replace(query, terms=self._keyed(query.user_id, query.terms))
        hits = await self.inner.search_lexical(keyed)
        return [replace(h, memory=self._open_memory(h.memory)) for h in hits]

    async def rank(self, query: VectorQuery, *, lexical: bool = False) -> list[tuple[UUID, float]]:
        self._check_filters(query)
        if lexical:
            query = replace(query, terms=self._keyed(query.user_id, query.terms))
        return await self.inner.rank(query, lexical=lexical)

    async def delete_user(self, user_id: str) -> int:
        return await self.inner.delete_user(user_id)

    async def purge_expired(self, now: datetime) -> int:
        return await self.inner.purge_expired(now)

    async def count(self, user_id: str | None = None) -> int:
        return await self.inner.count(user_id)

    async def info(self) -> CollectionInfo:
        return await self.inner.info()

    async def drop(self) -> None:
        await self.inner.drop()

    async def optimize(self) -> bool:
        return await self.inner.optimize()

    async def scan(
        self, cursor: str | None = None, limit: int = 500
    ) -> tuple[list[MemoryRecord], str | None]:
        records, cursor = await self.inner.scan(cursor, limit)
        return [self._open(r) for r in records], cursor

    # -- Resealable ------------------------------------------------------------

    @property
    def active_key(self) -> str:
        return self.ring.active_id

    def reload_keys(self) -> None:
        self.ring.reload()

    def _keys_of(self, r: MemoryRecord) -> set[str]:
        """The key ids of a stored record's sealable fields, PLAINTEXT for an unsealed one."""
        return {KeyRing.key_of(value) or PLAINTEXT for value in self._sealable(r)}

    def _sealable(self, r: MemoryRecord) -> Iterator[object]:
        yield r.memory.content
        if r.idempotency is not None:
            yield r.idempotency
        yield from (v for k, v in r.memory.metadata.items() if k in self.metadata_keys)
        for h in r.history:
            yield h.content
            yield from (v for k, v in h.metadata.items() if k in self.metadata_keys)

    async def key_usage(self) -> dict[str, int]:
        usage: dict[str, int] = {}
        cursor: str | None = None
        while True:
            records, cursor = await self.inner.scan(cursor, 500)
            for r in records:
                for key_id in self._keys_of(r):
                    usage[key_id] = usage.get(key_id, 0) + 1
            if cursor is None:
                return usage

    # -- SealedFields: a backup keeps records as stored ---------------------------

    def key_ids(self, record: MemoryRecord) -> set[str]:
        """The data keys sealing a stored record's fields (not its plaintext ones)."""
        return self._keys_of(record) - {PLAINTEXT}

    def describe(self, key_ids: Collection[str]) -> dict[str, Any]:
        aad = _KEY_CHECK.encode()
        return {
            "keys": {k: self.ring.seal(_KEY_CHECK, aad, key_id=k) for k in sorted(key_ids)},
            "index_check": self.ring.index(_KEY_CHECK),
            "metadata_keys": sorted(self.metadata_keys),
        }

    def indexed(self, record: MemoryRecord) -> MemoryRecord:
        if record.deleted_at is not None or record.terms is not None:
            return record
        content = self._open_memory(record.memory).content
        terms = self._keyed(record.memory.user_id, self.analyzer.terms(content))
        return replace(record, terms=terms)

    def missing(self, described: Mapping[str, Any]) -> list[str]:
        problems = []
        aad = _KEY_CHECK.encode()
        for key_id, check in dict(described.get("keys") or {}).items():
            try:
                self.ring.open(str(check), aad)
            except IntegrityError:
                problems.append(f"data key {key_id!r} is not in this server's ring, or differs")
        if described.get("index_check") not in (None, self.ring.index(_KEY_CHECK)):
            problems.append("the index key differs (exact duplicates would not be found)")
        unsealed = set(described.get("metadata_keys") or ()) - self.metadata_keys
        if unsealed:
            problems.append(
                f"metadata keys {sorted(unsealed)} are sealed in the backup: list them in "
                "security.encryption.metadata_keys"
            )
        return problems

    async def scan_stale(
        self, cursor: str | None = None, limit: int = 500
    ) -> tuple[list[MemoryRecord], str | None]:
        records, cursor = await self.inner.scan(cursor, limit)
        active = {self.ring.active_id}
        return [self._open(r) for r in records if self._keys_of(r) != active], cursor


def _rehash(m: Memory) -> Memory:
    # The stored hash is keyed; the services compare plain digests.
    return replace(m, content_hash=content_hash(m.content))
