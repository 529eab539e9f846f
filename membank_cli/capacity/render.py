"""The plan as text: Rich tables (default), JSON, Markdown or an HTML page.

Every format carries the same figures, and says first where they came from
(a simulated history is labelled as such in the title of each).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from membank_cli.capacity.advice import human_bytes
from membank_cli.capacity.prices import GiB

if TYPE_CHECKING:
    from membank_cli.capacity.plan import Plan

__all__ = ["FORMATS", "plan_dict", "render"]

FORMATS = ("table", "json", "markdown", "html")
_Tables = list[tuple[str, Sequence[str], list[Sequence[str]]]]


def _day(d: datetime | None) -> str:
    return f"{d:%Y-%m-%d}" if d else "-"


def _num(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:,.2f}"


def _money(plan: Plan, x: float | None) -> str:
    return f"{plan.prices.currency} {x:,.0f}" if x is not None else "-"


#: How each forecast metric is shown.
_UNITS = {"rss_bytes": "bytes", "disk_bytes": "bytes", "cpu_percent": "percent", "rps": "rps"}


def _amount(unit: str, x: float) -> str:
    if unit == "bytes":
        return human_bytes(x)
    if unit == "rps":
        return f"{x:,.1f}/s"
    return f"{x / 100:,.2f} cores" if unit == "percent" else _num(x)


def _tables(p: Plan) -> _Tables:
    h = p.horizon_days
    forecasts: list[Sequence[str]] = []
    for name, f in p.forecasts.items():
        unit = _UNITS.get(name, "")
        forecasts.append(
            (
                name,
                f.method + (" (log)" if f.scale == "log" else ""),
                f"{f.error_pct:.1f} % ({f.error_on})" if math.isfinite(f.error_pct) else "-",
                f"{_amount(unit, f.growth_per_day)} ({f.growth_pct_per_day:+.2f} %)",
                _amount(unit, float(f.history[-1])),
                f"{_amount(unit, f.at_day(h))} [{_amount(unit, f.at_day(h, 'lower'))} - "
                f"{_amount(unit, f.at_day(h, 'upper'))}]",
            )
        )
    runouts: list[Sequence[str]] = [
        (
            r.resource,
            _amount(r.unit, r.capacity),
            _amount(r.unit, r.today),
            _amount(r.unit, r.needed),
            _day(r.expected),
            _day(r.earliest),
        )
        for r in p.runouts
    ]
    sizing: list[Sequence[str]] = [
        (
            s.quantization + (" (chosen)" if s is p.chosen else ""),
            f"{s.ram_per_memory:,.0f} B",
            human_bytes(s.ram_bytes),
            f"{s.count} x {s.instance.name}" if s.instance else "nothing in the table fits",
            _money(p, s.monthly_cost) if s.available else f"n/a: {s.why_not}",
        )
        for s in p.sizings
    ]
    rec: list[Sequence[str]] = []
    if p.app:
        rec.append(("membank servers", f"{p.app[1]} x {p.app[0].name}"))
    if p.cluster:
        c = p.cluster
        what = f"{c.nodes} x {c.node.name}"
        if c.kind == "qdrant":
            what += f" (shard_number={c.shard_number}, replication_factor={c.replication_factor})"
        rec.append(
            ("Qdrant cluster" if c.kind == "qdrant" else "PostgreSQL (primary + standby)", what)
        )
    elif p.chosen.instance:
        rec.append(("server", p.chosen.instance.name))
    rec += [
        ("quantization", p.chosen.quantization),
        ("disk", f"{p.disk_gb_recommended} GB a volume"),
        (
            "monthly cost",
            f"{_money(p, p.monthly_cost)} ({p.prices.note or p.prices.source}, "
            f"prices of {p.prices.date})",
        ),
    ]
    return [
        (
            f"Forecast, {h} days ahead ({p.confidence:.0%} band)",
            ["metric", "method", "fit error", "growth a day", "today", f"in {h} days [band]"],
            forecasts,
        ),
        (
            f"Runs out on {p.current.name}"
            + (" (assumed current size)" if p.current_assumed else ""),
            [
                "resource",
                "usable",
                "today",
                f"need in {h} d (+{p.growth_buffer:.0%})",
                "expected",
                "earliest",
            ],
            runouts,
        ),
        (
            f"Size for {p.memories_needed:,.0f} memories, {p.cores_needed:.2f} cores "
            f"({p.backend}, {p.dimension}-d)",
            ["quantization", "RAM a memory", "RAM", "size", "a month"],
            sizing,
        ),
        ("Recommendation", ["", ""], rec),
        ("Advice", ["", ""], [(str(i + 1), a) for i, a in enumerate(p.advice)]),
    ]


def plan_dict(p: Plan) -> dict[str, Any]:
    """Every figure of the plan as plain JSON-able data."""
    h = p.horizon_days
    return {
        "source": p.source,
        "simulated": "simulated" in p.source,
        "backend": p.backend,
        "dimension": p.dimension,
        "horizon_days": h,
        "confidence": p.confidence,
        "growth_buffer": p.growth_buffer,
        "forecasts": {
            name: {
                "method": f.method,
                "scale": f.scale,
                "fit_error_pct": f.error_pct,
                "fit_error_on": f.error_on,
                "growth_per_day": f.growth_per_day,
                "growth_pct_per_day": f.growth_pct_per_day,
                "today": float(f.history[-1]),
                "at_horizon": f.at_day(h),
                "lower": f.at_day(h, "lower"),
                "upper": f.at_day(h, "upper"),
                "notes": f.notes,
            }
            for name, f in p.forecasts.items()
        },
        "current": {
            "instance": p.current.name,
            "assumed": p.current_assumed,
            "disk_gib": p.disk_gib,
        },
        "runouts": [
            {
                "resource": r.resource,
                "unit": r.unit,
                "usable": r.capacity,
                "today": r.today,
                "needed": r.needed,
                "runs_out": _day(r.expected) if r.expected else None,
                "earliest": _day(r.earliest) if r.earliest else None,
            }
            for r in p.runouts
        ],
        "sizing": [
            {
                "quantization": s.quantization,
                "ram_per_memory": s.ram_per_memory,
                "ram_bytes": s.ram_bytes,
                "instance": s.instance.name if s.instance else None,
                "count": s.count,
                "monthly_cost": s.monthly_cost,
                "available": s.available,
                "why_not": s.why_not or None,
            }
            for s in p.sizings
        ],
        "recommendation": {
            "quantization": p.chosen.quantization,
            "instance": p.chosen.instance.name if p.chosen.instance else None,
            "app": {"instance": p.app[0].name, "replicas": p.app[1]} if p.app else None,
            "cluster": {
                "kind": p.cluster.kind,
                "node": p.cluster.node.name,
                "nodes": p.cluster.nodes,
                "shard_number": p.cluster.shard_number,
                "replication_factor": p.cluster.replication_factor,
            }
            if p.cluster
            else None,
            "memories": p.memories_needed,
            "cores": p.cores_needed,
            "ram_gib": p.chosen.ram_bytes / GiB,
            "disk_gb": p.disk_gb_recommended,
            "monthly_cost": p.monthly_cost,
            "currency": p.prices.currency,
        },
        "prices": {"source": p.prices.source, "date": p.prices.date, "note": p.prices.note},
        "advice": p.advice,
    }


def _markdown(p: Plan) -> str:
    out = [f"# membank capacity plan\n\nSource: **{p.source}**\n"]
    for title, cols, rows in _tables(p):
        out.append(f"## {title}\n")
        out.append("| " + " | ".join(c or " " for c in cols) + " |")
        out.append("|" + "---|" * len(cols))
        out += ["| " + " | ".join(str(v).replace("|", "\\|") for v in r) + " |" for r in rows]
        out.append("")
    return "\n".join(out)


def _html(p: Plan) -> str:
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>membank capacity plan</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1.5em}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}th{background:#eef}</style>",
        f"</head><body><h1>membank capacity plan</h1><p>Source: <b>{e(p.source)}</b></p>",
    ]
    for title, cols, rows in _tables(p):
        parts.append(
            f"<h2>{e(title)}</h2><table><tr>" + "".join(f"<th>{e(c)}</th>" for c in cols) + "</tr>"
        )
        parts += ["<tr>" + "".join(f"<td>{e(str(v))}</td>" for v in r) + "</tr>" for r in rows]
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def render(plan: Plan, fmt: str, console: Console) -> None:
    """Print the plan in ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "json":
        print(json.dumps(plan_dict(plan), indent=2, default=str))
    elif fmt == "markdown":
        print(_markdown(plan))
    elif fmt == "html":
        print(_html(plan))
    else:
        simulated = "simulated" in plan.source
        console.print(f"[bold]{'[red]SIMULATED[/] ' if simulated else ''}source:[/] {plan.source}")
        for title, cols, rows in _tables(plan):
            t = Table(title=title, title_justify="left", show_header=any(cols))
            for c in cols:
                t.add_column(c)
            for r in rows:
                t.add_row(*(str(v) for v in r))
            console.print(t)
