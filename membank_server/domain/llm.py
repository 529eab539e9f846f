"""The language model port: one chat call that must answer JSON of a given shape."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["LanguageModel", "ModelAnswer"]


@dataclass(frozen=True, slots=True)
class ModelAnswer:
    """The decoded JSON the model answered, and the tokens the call used (prompt and
    answer, as the provider counts them)."""

    data: Any
    tokens: int


class LanguageModel(Protocol):
    """An OpenAI-compatible chat model asked for structured (JSON) answers."""

    @property
    def model(self) -> str: ...

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...

    async def complete_json(
        self, system: str, user: str, schema_name: str, schema: Mapping[str, Any]
    ) -> ModelAnswer:
        """Ask once (retrying what is worth retrying) for JSON matching ``schema``.

        The shape is requested, not trusted: callers check what comes back.

        Raises:
            ModelUnavailable: the model cannot answer, or refused the request.
            ModelOutputInvalid: the answer is not JSON.
        """
        ...
