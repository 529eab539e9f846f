"""Search filters as SQL over rows aliased ``m``: values bound as parameters, never in the text.

Metadata conditions follow Qdrant's rules, arrays included: an integer equals
only JSON integers (not 1.0, not true), a bool only booleans, a float equality is
a closed range, ranges compare numbers only, and "set" is anything but missing,
null or ``[]``.
"""

from __future__ import annotations

from typing import Any

from membank_server.domain.model import MetadataCondition, SearchFilter

__all__ = ["Args", "filters_sql"]


class Args:
    """Bind parameters of one statement: values never enter the SQL text."""

    def __init__(self, *values: Any) -> None:
        self.values = list(values)

    def add(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


def _typed(value: str | int | float | bool) -> str:
    """A JSON scalar as ``type:text``, the way the SQL below spells a jsonb element."""
    if isinstance(value, bool):
        return f"boolean:{'true' if value else 'false'}"
    return f"{'string' if isinstance(value, str) else 'number'}:{value}"


def _metadata_sql(c: MetadataCondition, args: Args) -> str:
    key = args.add(c.key)
    if c.equals is None and c.any_of is None and c.gte is None and c.lte is None:
        # Set: as Qdrant's "not is_empty", anything but missing, null or [].
        return (
            f"coalesce(jsonb_typeof(m.metadata -> {key}) <> 'null'"
            f" AND m.metadata -> {key} <> '[]'::jsonb, false)"
        )
    elements = (
        f"jsonb_array_elements(CASE jsonb_typeof(m.metadata -> {key}) WHEN 'array'"
        f" THEN m.metadata -> {key} ELSE jsonb_build_array(m.metadata -> {key}) END)"
    )
    typed = "jsonb_typeof(e.v) || ':' || (e.v #>> '{}')"
    if c.any_of is not None:
        predicate = f"{typed} = ANY({args.add([_typed(v) for v in c.any_of])}::text[])"
    elif c.equals is not None and not isinstance(c.equals, float):
        predicate = f"{typed} = {args.add(_typed(c.equals))}"
    else:
        low, high = (c.equals, c.equals) if isinstance(c.equals, float) else (c.gte, c.lte)
        # CASE, not AND: PostgreSQL may evaluate the operands of AND in any order.
        number = "(CASE WHEN jsonb_typeof(e.v) = 'number' THEN (e.v #>> '{}')::numeric END)"
        parts = [f"{number} IS NOT NULL"]
        # A float's shortest repr orders like the float and, as text, cannot overflow.
        if low is not None:
            parts.append(f"{number} >= {args.add(repr(float(low)))}::text::numeric")
        if high is not None:
            parts.append(f"{number} <= {args.add(repr(float(high)))}::text::numeric")
        predicate = " AND ".join(parts)
    return f"EXISTS (SELECT 1 FROM {elements} AS e(v) WHERE {predicate})"


def filters_sql(f: SearchFilter, args: Args) -> list[str]:
    sql: list[str] = []
    for column, op, value in (
        ("agent_id", "=", f.agent_id),
        ("session_id", "=", f.session_id),
        ("created_at", ">=", f.created_after),
        ("created_at", "<=", f.created_before),
        ("occurred_at", ">=", f.occurred_after),
        ("occurred_at", "<=", f.occurred_before),
    ):
        if value is not None:
            sql.append(f"m.{column} {op} {args.add(value)}")
    sql.extend(_metadata_sql(c, args) for c in f.metadata)
    return sql
