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
    id: UUID
    metadata: dict[str, Any] = {}
    agent_id: str | None = None
    session_id: str | None = None
    expires_at: datetime | None = None
    vector: list[float] | None = None


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


def encode_memory(item: NewMemory) -> bytes:
    """``item`` with its id (an asynchronous write always knows the id it will have)."""
    assert item.id is not None
    return msgspec.msgpack.encode(
        _Memory(
            item.user_id, item.content, item.id, dict(item.metadata), item.agent_id,
            item.session_id, item.expires_at, item.vector,
        )
    )  # fmt: skip


def decode_memory(payload: bytes) -> NewMemory:
    m = _memory.decode(payload)
    return NewMemory(
        m.user_id, m.content, m.metadata, m.agent_id, m.session_id, m.expires_at, m.id, m.vector
    )
