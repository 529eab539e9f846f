"""The HTTP shapes of jobs, dead letters and fact extraction."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from litestar.openapi.spec import OpenAPI, Schema
from msgspec import Meta, Struct

from membank_server.api.schemas import VISIBLE_TEXT, ErrorInfo, IdStr
from membank_server.domain.jobs import DeadItem, ItemResult, Job
from membank_server.services._job_payloads import Conversation, Message
from membank_server.services.extraction import Decision, Extraction

__all__ = [
    "DeadList",
    "DeadRead",
    "DecisionRead",
    "ExtractBody",
    "ExtractRead",
    "JobItemRead",
    "JobList",
    "JobRead",
    "MessageBody",
    "Retried",
    "state_extraction_rules",
]

_decode = msgspec.json.Decoder()


class JobItemRead(Struct):
    index: int
    user_id: str
    state: str
    attempts: int
    memory_id: UUID | None = None
    #: What else the item answers: an extraction's decisions, a count of erased memories.
    result: Any = None
    error: ErrorInfo | None = None

    @classmethod
    def of(cls, r: ItemResult) -> JobItemRead:
        error = ErrorInfo(r.error_code or "error", r.error or "") if r.error_code else None
        result = _decode.decode(r.detail) if r.detail else None
        return cls(r.index, r.user_id, r.state.value, r.attempts, r.memory_id, result, error)


class JobRead(Struct):
    id: UUID
    kind: str
    status: str
    user_ids: list[str]
    created_at: datetime
    updated_at: datetime
    total: int
    done: int
    dead: int
    #: A page of the items (``item_offset``, ``item_limit``), in index order.
    items: list[JobItemRead] | None = None
    #: ``item_offset`` of the next page of items; None on the last.
    next_item_offset: int | None = None

    @classmethod
    def of(
        cls, job: Job, items: list[ItemResult] | None = None, limit: int | None = None
    ) -> JobRead:
        more = items is not None and limit is not None and len(items) == limit
        return cls(
            job.id, job.kind.value, job.status.value, list(job.user_ids), job.created_at,
            job.updated_at, job.total, job.done, job.dead,
            [JobItemRead.of(i) for i in items] if items is not None else None,
            items[-1].index + 1 if more and items else None,
        )  # fmt: skip


class JobList(Struct):
    items: list[JobRead]


class DeadRead(Struct):
    job_id: UUID
    index: int
    kind: str
    user_id: str
    attempts: int
    error: ErrorInfo
    at: datetime

    @classmethod
    def of(cls, d: DeadItem) -> DeadRead:
        return cls(
            d.job_id, d.index, d.kind.value, d.user_id, d.attempts,
            ErrorInfo(d.error_code, d.error), d.at,
        )  # fmt: skip


class DeadList(Struct):
    items: list[DeadRead]


class Retried(Struct):
    retried: int


class MessageBody(Struct, forbid_unknown_fields=True):
    role: Literal["user", "assistant", "system"]
    content: Annotated[str, Meta(min_length=1, pattern=VISIBLE_TEXT)]


class ExtractBody(Struct, forbid_unknown_fields=True, omit_defaults=True):
    user_id: IdStr
    messages: Annotated[list[MessageBody], Meta(min_length=1)]
    agent_id: IdStr | None = None
    session_id: IdStr | None = None

    def to_domain(self) -> Conversation:
        return Conversation(
            self.user_id,
            [Message(m.role, m.content) for m in self.messages],
            self.agent_id,
            self.session_id,
        )


class DecisionRead(Struct):
    #: ADD, UPDATE, DELETE or NONE; absent when the model's decision was unusable.
    event: str | None
    fact: str | None
    memory_id: UUID | None = None
    previous: str | None = None
    reason: str | None = None
    error: ErrorInfo | None = None

    @classmethod
    def of(cls, d: Decision) -> DecisionRead:
        error = ErrorInfo(d.error_code or "error", d.error or "") if d.error_code else None
        return cls(d.event, d.fact, d.memory_id, d.previous, d.reason, error)


class ExtractRead(Struct):
    facts: list[str]
    results: list[DecisionRead]
    tokens: int

    @classmethod
    def of(cls, e: Extraction) -> ExtractRead:
        return cls(list(e.facts), [DecisionRead.of(d) for d in e.decisions], e.tokens)


def state_extraction_rules(document: OpenAPI, max_messages: int, message_max_chars: int) -> None:
    """What the server enforces of an extraction request, in the OpenAPI document: no
    unknown fields, at most ``max_messages`` messages of ``message_max_chars``."""
    schemas = document.components.schemas if document.components is not None else None
    if schemas is None:
        return
    for name in ("ExtractBody", "MessageBody"):
        if name in schemas:
            schemas[name].additional_properties = False
    messages = (schemas["ExtractBody"].properties or {}).get("messages")
    if isinstance(messages, Schema):
        messages.max_items = max_messages
    content = (schemas["MessageBody"].properties or {}).get("content")
    if isinstance(content, Schema):
        content.max_length = message_max_chars
