"""What a queued item carries, as bytes the queue keeps without reading them."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from membank_server.services.inputs import NewMemory

__all__ = ["Conversation", "Message", "UserWork", "decode_memory", "encode_memory"]


class _Memory(msgspec.Struct, array_like=True, omit_defaults=True):
    user_id: str
    content: str
    id: UUID | None
    metadata: dict[str, Any] = {}
    agent_id: str | None = None
    session_id: str | None = None
    expires_at: datetime | None = None
    vector: list[float] | None = None
    idempotency_key: str | None = None


class Message(msgspec.Struct, array_like=True):
    role: str
    content: str


class Conversation(msgspec.Struct, array_like=True, omit_defaults=True):
    """An extraction request: the messages of one user's conversation."""

    user_id: str
    messages: list[Message]
    agent_id: str | None = None
    session_id: str | None = None


class UserWork(msgspec.Struct, array_like=True):
    """A job about one user as a whole (reindex, erase)."""

    user_id: str


_memory = msgspec.msgpack.Decoder(_Memory)


def encode_memory(item: NewMemory, idempotency_key: str | None = None) -> bytes:
    """``item`` as queued: with its id, or (an ``Idempotency-Key`` write) with the key
    its id derives from; either way the id it will have is known now."""
    assert item.id is not None or idempotency_key is not None
    return msgspec.msgpack.encode(
        _Memory(
            item.user_id, item.content, item.id, dict(item.metadata), item.agent_id,
            item.session_id, item.expires_at, item.vector, idempotency_key,
        )
    )  # fmt: skip


def decode_memory(payload: bytes) -> tuple[NewMemory, str | None]:
    """The item, and its ``Idempotency-Key`` (None for most)."""
    m = _memory.decode(payload)
    item = NewMemory(
        m.user_id, m.content, m.metadata, m.agent_id, m.session_id, m.expires_at, m.id, m.vector
    )
    return item, m.idempotency_key
