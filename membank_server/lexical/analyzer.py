"""SnowballAnalyzer: text to index terms (tokenise, fold case, drop stop words, stem).

The same analysis runs on a memory when it is written and on a query when it is
asked, on every backend, so terms match wherever they are stored. Tokens are runs
of letters and digits (``\\w``, Unicode-aware), NFKC-normalised and case-folded;
apostrophes inside a word are dropped ("Maya's" -> "maya"), so "O'Brien" stays one
token. Numbers stay terms ("2019", "14th"): dates and counts are what agents ask
about; a date or time written with separators is also one term ("2025-07-23").
Stop words are the language's most common function words; month and weekday names
are never stop words ("may" stays).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import Stemmer

from membank_server.domain.errors import ConfigError
from membank_server.lexical._stopwords import STOP_WORDS

__all__ = ["LANGUAGES", "SnowballAnalyzer"]

LANGUAGES: tuple[str, ...] = tuple(sorted(Stemmer.algorithms()))
_WORD = re.compile(r"\w+(?:['\u2019]\w+)*")
#: Numbers joined by - / . : (a date, a time, a version) are also one term, beside their
#: parts: "2025-07-23" finds that date exactly, "23" still finds it loosely.
_JOINED = re.compile(r"\d+(?:[-/.:]\d+)+")
_APOSTROPHE = re.compile(r"['\u2019]s?\b")
#: Longer tokens are noise (hashes, base64): cut, so they cannot bloat an index.
_MAX_TOKEN = 40
#: Terms kept per text: far beyond any memory's length limit in words.
_MAX_TERMS = 4096


class SnowballAnalyzer:
    """The :class:`~membank_server.domain.ports.Analyzer` of membank's lexical index.

    Args:
        language: A Snowball stemmer (``LANGUAGES``); stop words where membank ships a
            list for it (English), none otherwise.
        stop_words: Drop the language's stop words.
    """

    def __init__(self, language: str = "english", *, stop_words: bool = True) -> None:
        if language not in LANGUAGES:
            raise ConfigError(
                f"search.language must be one of the Snowball languages {list(LANGUAGES)}"
            )
        self.language = language
        self._stemmer = Stemmer.Stemmer(language)
        self._stop = STOP_WORDS.get(language, frozenset()) if stop_words else frozenset()
        self._stem = lru_cache(maxsize=65_536)(self._stemmer.stemWord)

    def terms(self, text: str) -> tuple[str, ...]:
        """The text's index terms, in order, repeats kept (they count as frequency)."""
        folded = unicodedata.normalize("NFKC", text).casefold()
        out: list[str] = [m.group()[:_MAX_TOKEN] for m in _JOINED.finditer(folded)]
        for match in _WORD.finditer(folded):
            token = _APOSTROPHE.sub("", match.group())[:_MAX_TOKEN]
            if not token or token in self._stop or token == "_" * len(token):
                continue
            out.append(self._stem(token))
            if len(out) >= _MAX_TERMS:
                break
        return tuple(out)
