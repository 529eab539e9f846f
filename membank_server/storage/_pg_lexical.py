"""The lexical index in PostgreSQL: a ``tsvector`` column ``lexemes`` with a GIN index.

The column holds membank's own terms (``membank_server.lexical``, the analysis every
backend shares; keyed hashes under field encryption), with their positions, written
by the store with each row rather than generated from ``content``: under encryption
the content is ciphertext, and one analysis everywhere keeps the backends' terms
equal. A query matches rows holding any of its terms (the GIN index) and ranks them
by BM25 computed in SQL (:func:`bm25_sql`), as the Qdrant stores do: IDF from the
asking user's live memories, ``ln(1 + (N - df + 0.5) / (df + 0.5))``, times the
saturated term frequency with the same ``k1``, ``b`` and fixed average length. One
difference: a row's length is its number of distinct terms (what ``length(tsvector)``
counts), where the sparse vectors count every term; for short memories the two are
nearly equal, so rankings agree by overlap, not always exactly (see the README).

Rows written before the column existed get their terms when the store starts
(:func:`backfill`), a batch at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from membank_server.domain.integrity import SEALED_PREFIX
from membank_server.lexical import Bm25Weights, LexicalIndex

__all__ = ["backfill", "bm25_sql", "tsquery_text", "tsvector_text"]
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


def bm25_sql(table: str, select: str, live: str, wanted: str, weights: Bm25Weights) -> str:
    """BM25 over the rows of ``$1`` (user) live at ``$2`` matching the tsquery ``$3``,
    whose distinct terms are the array ``$4``; ``wanted`` is the filters' condition on
    ``m`` (scored rows), ``select`` the columns returned beside ``score``. IDF counts
    every live matching row of the user, whatever the filters."""
    k1, b, avg = float(weights.k1), float(weights.b), float(weights.avg_len)
    return (
        f"WITH matched AS (SELECT m.id, m.lexemes, ({wanted}) AS wanted FROM {table} m"
        f" WHERE m.user_id = $1 AND {live} AND m.lexemes @@ $3::tsquery),"
        f" corpus AS (SELECT count(*)::float8 AS n FROM {table} m WHERE m.user_id = $1"
        f" AND {live}),"
        " terms AS (SELECT x.id, x.wanted, u.lexeme,"
        " coalesce(array_length(u.positions, 1), 1)::float8 AS tf,"
        " length(x.lexemes)::float8 AS dl"
        " FROM matched x, unnest(x.lexemes) u WHERE u.lexeme = ANY($4::text[])),"
        " df AS (SELECT lexeme, count(*)::float8 AS df FROM terms GROUP BY lexeme),"
        " scored AS (SELECT t.id, sum(ln(1 + (c.n - d.df + 0.5) / (d.df + 0.5))"
        f" * t.tf * {k1 + 1} / (t.tf + {k1} * (1 - {b} + {b} * t.dl / {avg}))) AS score"
        " FROM terms t JOIN df d USING (lexeme) CROSS JOIN corpus c WHERE t.wanted"
        " GROUP BY t.id)"
        f" SELECT {select}, s.score FROM scored s JOIN {table} m ON m.id = s.id"
    )


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
