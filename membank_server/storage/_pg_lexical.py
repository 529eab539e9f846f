"""The lexical index in PostgreSQL: a ``tsvector`` column ``lexemes`` with a GIN index.

The column holds membank's own terms (``membank_server.lexical``, the analysis every
backend shares; keyed hashes under field encryption), with their positions, written
by the store with each row rather than generated from ``content``: under encryption
the content is ciphertext, and one analysis everywhere keeps the backends' terms
equal. A query matches rows holding any of its terms and ranks them by
``ts_rank_cd`` (cover density) normalised by the row's length: a term-frequency and
proximity score, without BM25's IDF, so rankings agree with the Qdrant stores' by
overlap rather than exactly (see the README).

Rows written before the column existed get their terms when the store starts
(:func:`backfill`), a batch at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from membank_server.domain.integrity import SEALED_PREFIX
from membank_server.lexical import LexicalIndex

__all__ = ["RANK", "backfill", "tsquery_text", "tsvector_text"]

#: ``ts_rank_cd``'s normalisation: 1 divides by 1 + log(the row's length in terms).
RANK = 1
#: PostgreSQL's largest tsvector position.
_MAX_POSITION = 16_383
_BATCH = 500


def _quoted(term: str) -> str:
    return "'" + term.replace("\\", "\\\\").replace("'", "''") + "'"


def tsvector_text(terms: Sequence[str]) -> str:
    """Terms as a tsvector literal with their positions (1-based)."""
    positions: dict[str, list[int]] = {}
    for at, term in enumerate(terms, start=1):
        positions.setdefault(term, []).append(min(at, _MAX_POSITION))
    return " ".join(f"{_quoted(t)}:{','.join(map(str, p[:256]))}" for t, p in positions.items())


def tsquery_text(terms: Sequence[str]) -> str:
    """Any of the terms, as a tsquery literal."""
    return " | ".join(_quoted(t) for t in dict.fromkeys(terms))


def _terms(index: LexicalIndex, row: Any) -> tuple[str, ...]:
    # As LexicalIndex.terms: none for a tombstone or sealed content.
    if row["state"] != "live" or row["content"].startswith(SEALED_PREFIX):
        return ()
    return index.analyzer.terms(row["content"])


async def backfill(conn: Any, table: str, index: LexicalIndex) -> int:
    """Give every row without terms its terms (rows of an earlier version); how many."""
    done = 0
    while True:
        rows = await conn.fetch(
            f"SELECT id, content, state FROM {table} WHERE lexemes IS NULL LIMIT {_BATCH}"
        )
        if not rows:
            return done
        values = [(row["id"], tsvector_text(_terms(index, row))) for row in rows]
        await conn.executemany(
            f"UPDATE {table} SET lexemes = $2::tsvector WHERE id = $1 AND lexemes IS NULL",
            values,
        )
        done += len(rows)
