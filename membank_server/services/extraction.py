"""Fact extraction: a conversation becomes memories, through a language model.

1. The model reads the conversation and answers the facts worth remembering
   (``{"facts": [...]}``), outside any lock: it is the slow part.
2. Under the user's extraction lock, each fact is embedded and the user's most
   similar memories are found; the model sees them (numbered, never by id) beside
   the facts and answers a decision per fact: ``ADD`` a memory, ``UPDATE`` one,
   ``DELETE`` one, or ``NONE`` (known already). Each decision is checked and then
   applied through :class:`MemoryService`, still under the lock, so two
   extractions for one user never decide on the same stale picture: the second
   sees what the first wrote. An update names the version the model saw
   (``If-Match``), so a plain write that changed the memory meanwhile makes that one
   decision fail instead of being overwritten.

Every write carries the decision and the model's reason in its history event's
metadata, under :data:`NOTE_KEY` (the memory's own metadata stays as it was).

What the model answers is checked, never trusted: an answer that is not the JSON
asked for fails the extraction before anything is written
(``ModelOutputInvalid``, 502); a decision that is malformed (an unknown event, a
memory number it was not shown, no text) is reported with its error and nothing of
it is written, while the well-formed ones are applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from membank_server.domain.errors import (
    InvalidInput,
    MembankError,
    ModelOutputInvalid,
    NotConfigured,
    QuotaExceeded,
)
from membank_server.domain.llm import LanguageModel
from membank_server.domain.model import Memory
from membank_server.services._extraction_prompts import (
    DECIDE_SCHEMA,
    DECIDE_SYSTEM,
    FACTS_SCHEMA,
    FACTS_SYSTEM,
)
from membank_server.services._job_payloads import Conversation
from membank_server.services.inputs import NOTE_KEY, MemoryPatch, NewMemory, RecallQuery
from membank_server.services.memories import MemoryService

__all__ = ["NOTE_KEY", "Decision", "Extraction", "ExtractionService", "TokenBudget"]

_EVENTS = ("ADD", "UPDATE", "DELETE", "NONE")
_MAX_FACTS = 50
_MAX_REASON = 500


@dataclass(frozen=True, slots=True)
class Decision:
    """One decision of the model and what became of it (``error`` when it failed)."""

    event: str | None
    fact: str | None
    memory_id: UUID | None = None
    previous: str | None = None
    reason: str | None = None
    error_code: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Extraction:
    facts: tuple[str, ...]
    decisions: tuple[Decision, ...]
    tokens: int


class TokenBudget:
    """Tokens each user may spend on the model per window (in this process). Checked
    when an extraction starts; its two calls then run, and what they used is spent."""

    def __init__(
        self, tokens: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.tokens, self.window, self._clock = tokens, window, clock
        self._used: dict[str, tuple[float, int]] = {}

    def used(self, user_id: str) -> int:
        start, used = self._used.get(user_id, (0.0, 0))
        return used if self._clock() - start < self.window else 0

    def check(self, user_id: str) -> None:
        if self.used(user_id) >= self.tokens:
            raise QuotaExceeded(
                f"user {user_id} has used this window's {self.tokens} model tokens",
                {"limit": self.tokens, "window_seconds": self.window},
            )

    def spend(self, user_id: str, tokens: int) -> None:
        now = self._clock()
        start, used = self._used.get(user_id, (now, 0))
        if now - start >= self.window:
            start, used = now, 0
        self._used[user_id] = (start, used + max(tokens, 0))


class _UserLocks:
    """One lock per user with an extraction under way (not striped: a lock is held
    for model calls, seconds long, and must not stall other users)."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, user_id: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(user_id, (asyncio.Lock(), 0))
        self._locks[user_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[user_id]
            if users == 1:
                del self._locks[user_id]
            else:
                self._locks[user_id] = (lock, users - 1)


class ExtractionService:
    """Turns conversations into memories (module docs).

    Args:
        model: The language model; None when none is configured (400 then).
        memories: Where memories are searched and written.
        budget: Model tokens per user and window.
        similar: Similar memories shown per fact.
        max_messages: Messages one request may hold.
        message_max_chars: Characters one message may hold.
    """

    def __init__(
        self,
        model: LanguageModel | None,
        memories: MemoryService,
        budget: TokenBudget,
        *,
        similar: int = 5,
        max_messages: int = 200,
        message_max_chars: int = 8_000,
    ) -> None:
        self.model = model
        self.memories = memories
        self.budget = budget
        self._similar = similar
        self.max_messages, self.message_max_chars = max_messages, message_max_chars
        self._locks = _UserLocks()

    def check(self, conversation: Conversation) -> None:
        """What is checked before an extraction is run or queued.

        Raises:
            NotConfigured: no language model (``llm.base_url`` unset).
            InvalidInput: too many messages or characters.
        """
        if self.model is None:
            raise NotConfigured(
                "fact extraction needs a language model: set llm.base_url (and llm.model, "
                "llm.api_key) in the server's settings"
            )
        messages = conversation.messages
        if len(messages) > self.max_messages:
            raise InvalidInput(
                f"at most {self.max_messages} messages per extraction, got {len(messages)}",
                {"field": "messages", "limit": self.max_messages},
            )
        for i, m in enumerate(messages):
            if len(m.content) > self.message_max_chars:
                raise InvalidInput(
                    f"message {i} holds {len(m.content)} characters; at most "
                    f"{self.message_max_chars} allowed",
                    {"field": "messages", "index": i, "limit": self.message_max_chars},
                )

    async def extract(self, conversation: Conversation) -> Extraction:
        """Extract facts and apply the model's decisions (module docs).

        Raises:
            NotConfigured, InvalidInput: see :meth:`check`.
            QuotaExceeded: the user's token budget is spent.
            ModelUnavailable: the model cannot answer.
            ModelOutputInvalid: it answered something unusable; nothing was written.
        """
        self.check(conversation)
        model, user = self.model, conversation.user_id
        assert model is not None
        self.budget.check(user)
        prompt = json.dumps(
            {"messages": [{"role": m.role, "content": m.content} for m in conversation.messages]},
            ensure_ascii=False,
        )
        answer = await model.complete_json(FACTS_SYSTEM, prompt, "membank_facts", FACTS_SCHEMA)
        self.budget.spend(user, answer.tokens)
        facts = self._facts(answer.data)
        if not facts:
            return Extraction((), (), answer.tokens)
        async with self._locks.hold(user):
            shown = await self._similar_memories(user, facts)
            prompt = json.dumps(
                {
                    "memories": [{"id": str(i), "text": m.content} for i, m in enumerate(shown)],
                    "facts": facts,
                },
                ensure_ascii=False,
            )
            verdict = await model.complete_json(
                DECIDE_SYSTEM, prompt, "membank_decisions", DECIDE_SCHEMA
            )
            self.budget.spend(user, verdict.tokens)
            entries = _entries(verdict.data)
            decisions = [await self._apply(conversation, facts, shown, e) for e in entries]
        return Extraction(tuple(facts), tuple(decisions), answer.tokens + verdict.tokens)

    def _facts(self, data: Any) -> list[str]:
        raw = data.get("facts") if isinstance(data, dict) else None
        if not isinstance(raw, list) or not all(isinstance(f, str) for f in raw):
            raise ModelOutputInvalid(
                'the language model did not answer {"facts": [strings]}', {"step": "facts"}
            )
        limit = self.memories.limits.content_max_chars
        facts: list[str] = []
        for fact in (" ".join(f.split()) for f in raw):
            if fact and len(fact) <= limit and fact not in facts:
                facts.append(fact)
        return facts[:_MAX_FACTS]

    async def _similar_memories(self, user_id: str, facts: list[str]) -> list[Memory]:
        vectors = await self.memories.embedder.embed(facts)
        searches = await asyncio.gather(
            *(
                self.memories.search(RecallQuery(user_id, vector=v, limit=self._similar))
                for v in vectors
            )
        )
        found: dict[UUID, Memory] = {}
        for hits in searches:
            for hit in hits:
                found.setdefault(hit.memory.id, hit.memory)
        return sorted(found.values(), key=lambda m: m.id)

    async def _apply(
        self,
        conversation: Conversation,
        facts: list[str],
        shown: list[Memory],
        entry: Any,
    ) -> Decision:
        try:
            event, fact, target, text, reason = _checked(entry, facts, shown)
        except ModelOutputInvalid as exc:
            fact_text = _fact_of(entry, facts)
            return Decision(None, fact_text, error_code=exc.code, error=exc.message)
        note = {NOTE_KEY: {"event": event, "reason": reason}}
        user = conversation.user_id
        previous = target.content if target is not None else None
        try:
            if event == "ADD":
                assert text is not None
                memory, _ = await self.memories.remember(
                    NewMemory(user, text, agent_id=conversation.agent_id,
                              session_id=conversation.session_id, note=note)
                )  # fmt: skip
                return Decision(event, fact, memory.id, None, reason)
            assert target is not None or event == "NONE"
            if event == "UPDATE" and target is not None:
                patch = MemoryPatch(content=text, note=note)
                memory = await self.memories.update(user, target.id, patch, target.version)
                return Decision(event, fact, memory.id, previous, reason)
            if event == "DELETE" and target is not None:
                await self.memories.forget(user, target.id, note)
                return Decision(event, fact, target.id, previous, reason)
        except MembankError as exc:
            return Decision(event, fact, target.id if target else None, previous, reason,
                            exc.code, exc.message)  # fmt: skip
        return Decision(event, fact, target.id if target else None, None, reason)


def _entries(data: Any) -> list[Any]:
    raw = data.get("decisions") if isinstance(data, dict) else None
    if not isinstance(raw, list):
        raise ModelOutputInvalid(
            'the language model did not answer {"decisions": [...]}', {"step": "decisions"}
        )
    return raw


def _fact_of(entry: Any, facts: list[str]) -> str | None:
    index = entry.get("fact") if isinstance(entry, Mapping) else None
    return facts[index] if isinstance(index, int) and 0 <= index < len(facts) else None


def _checked(
    entry: Any, facts: list[str], shown: list[Memory]
) -> tuple[str, str | None, Memory | None, str | None, str]:
    """(event, fact, target memory, text, reason) of a well-formed decision."""
    if not isinstance(entry, Mapping):
        raise ModelOutputInvalid("a decision is not an object")
    event = entry.get("event")
    if event not in _EVENTS:
        raise ModelOutputInvalid(f"a decision's event is not one of {', '.join(_EVENTS)}")
    fact = _fact_of(entry, facts)
    reason = entry.get("reason")
    reason = reason[:_MAX_REASON] if isinstance(reason, str) else ""
    ref, target = entry.get("id"), None
    if ref is not None:
        if not isinstance(ref, str) or not ref.isdigit() or int(ref) >= len(shown):
            raise ModelOutputInvalid(f"a {event} decision names a memory it was not shown")
        target = shown[int(ref)]
    if event in ("UPDATE", "DELETE") and target is None:
        raise ModelOutputInvalid(f"a {event} decision names no memory")
    text = entry.get("text")
    if event in ("ADD", "UPDATE"):
        text = text if isinstance(text, str) and text.strip() else fact
        if text is None:
            raise ModelOutputInvalid(f"an {event} decision has no text and no fact")
    return event, fact, target, text, reason
