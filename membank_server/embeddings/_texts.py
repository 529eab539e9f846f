"""Input checks shared by the embedders."""

from __future__ import annotations

from collections.abc import Sequence

from membank_server.domain.errors import InvalidInput

__all__ = ["checked_texts"]


def checked_texts(texts: Sequence[str]) -> list[str]:
    """The texts as a list, or InvalidInput naming the first one that cannot be embedded."""
    # A bare string is a Sequence[str] too; embedding it letter by letter is never meant.
    if isinstance(texts, str):
        raise InvalidInput("texts must be a list of strings, not a single string")
    items = list(texts)
    for index, text in enumerate(items):
        if not isinstance(text, str):
            raise InvalidInput(
                f"text {index} is a {type(text).__name__}, not a string", {"index": index}
            )
        if not text.strip():
            raise InvalidInput(f"text {index} is blank", {"index": index})
    return items
