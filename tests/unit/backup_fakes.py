"""An in-memory BackupTarget for unit tests: the port's semantics, no I/O."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, AsyncIterator

from membank_server.archive._names import check_name, check_prefix
from membank_server.domain.backup import StoredFile
from membank_server.domain.errors import BackupNotFound

__all__ = ["MemoryTarget"]


class MemoryTarget:
    """Files in a dict; a put becomes visible only once its chunks are all in.

    ``keep_bytes=False`` keeps sizes and hashes only, for tests that stream more
    than they want to hold (the bounded-memory test).
    """

    def __init__(self, *, keep_bytes: bool = True, read_chunk: int = 65_536) -> None:
        self.files: dict[str, bytes] = {}
        self.stored: dict[str, StoredFile] = {}
        self.keep_bytes = keep_bytes
        self.read_chunk = read_chunk
        self.puts: list[str] = []
        self.largest_chunk = 0

    @property
    def url(self) -> str:
        return "memory://"

    async def put(self, name: str, chunks: AsyncIterable[bytes]) -> StoredFile:
        check_name(name)
        digest, size, data = hashlib.sha256(), 0, bytearray()
        async for chunk in chunks:
            self.largest_chunk = max(self.largest_chunk, len(chunk))
            digest.update(chunk)
            size += len(chunk)
            if self.keep_bytes:
                data += chunk
        stored = StoredFile(name, size, digest.hexdigest())
        self.files[name] = bytes(data)
        self.stored[name] = stored
        self.puts.append(name)
        return stored

    async def get(self, name: str) -> AsyncIterator[bytes]:
        if name not in self.files:
            raise BackupNotFound(f"no file {name}")
        data = self.files[name]
        for at in range(0, len(data), self.read_chunk):
            yield data[at : at + self.read_chunk]

    async def list(self, prefix: str = "") -> list[str]:
        check_prefix(prefix)
        return sorted(n for n in self.files if n.startswith(prefix))

    async def exists(self, name: str) -> bool:
        return name in self.files

    async def delete(self, name: str) -> None:
        self.files.pop(name, None)
        self.stored.pop(name, None)

    async def cleanup(self, older_than: float = 86_400.0) -> int:
        return 0

    async def aclose(self) -> None:
        return None
