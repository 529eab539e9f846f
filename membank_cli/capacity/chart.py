"""The plan as a chart: history, forecast with its band, capacity lines, run-out dates.

Four panels (memories, RAM, disk, CPU), each with the observed history, the
forecast, the band at the plan's confidence, a line for what the current and
the recommended size can hold, and the day the current one runs out. Written
as a PNG (matplotlib, no display needed) or as a self-contained HTML page
(plotly with its JavaScript inline, so it opens offline).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from membank_cli.capacity.model import BACKENDS, MemoryModel
from membank_cli.capacity.plan import CPU_USABLE, DISK_USABLE, RAM_USABLE, Plan
from membank_cli.capacity.prices import GiB

__all__ = ["Panel", "panels", "write_chart"]

_HISTORY, _FORECAST, _NOW, _NEXT = "#1f4e79", "#2e86c1", "#c0392b", "#1e8449"


@dataclass
class Panel:
    title: str
    unit: str
    history_at: list[datetime]
    history: np.ndarray
    at: list[datetime]
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    #: (label, value, colour): what a size can hold.
    lines: list[tuple[str, float, str]] = field(default_factory=list)
    #: (day, label): when the current size runs out.
    marks: list[tuple[datetime, str]] = field(default_factory=list)


def panels(plan: Plan) -> list[Panel]:
    """The series to draw, in display units (GiB, cores), cut at the plan's horizon."""
    h = plan.horizon_days
    mem = plan.forecasts["memories"]
    chosen, nxt = plan.chosen, plan.chosen.instance
    model = MemoryModel(
        backend=plan.backend, dimension=plan.dimension, quantization=chosen.quantization
    )
    k = plan.rss_factor
    cur = plan.current.name + (" (assumed)" if plan.current_assumed else "")
    ahead = (mem.at[:h], mem.mean[:h], mem.lower[:h], mem.upper[:h])
    # The measured RSS and disk are this backend's; for another, the model's view of them.
    same = plan.history_backend == plan.backend and chosen.quantization == "none"

    def ram(x: np.ndarray) -> np.ndarray:
        return (model.fixed_ram() + x * model.ram_per_memory()) * k / GiB

    def disk(x: np.ndarray) -> np.ndarray:
        return (model.fixed_disk() + x * model.disk_per_memory()) / GiB

    def observed(name: str, scale: float, derived: np.ndarray) -> tuple[list[datetime], np.ndarray]:
        f = plan.forecasts.get(name)
        return (f.history_at, f.history / scale) if f and same else (mem.history_at, derived)

    disk_now = plan.disk_gib * GiB * DISK_USABLE
    memories = Panel("Memories", "memories", mem.history_at, mem.history, *ahead)
    running = plan.history_backend if plan.history_backend in BACKENDS else plan.backend
    now = MemoryModel(backend=running, dimension=plan.dimension)
    fits = now.memories_fitting(plan.current.ram_bytes * RAM_USABLE / k, disk_now)
    memories.lines.append((f"{cur} holds {fits:,.0f} on {running}", fits, _NOW))
    what = plan.backend + ("" if chosen.quantization == "none" else f", {chosen.quantization}")
    ram_p = Panel(
        f"RAM ({what}; model x {k:.2f})",
        "GiB",
        *observed("rss_bytes", GiB, ram(mem.history)),
        ahead[0],
        ram(ahead[1]),
        ram(ahead[2]),
        ram(ahead[3]),
    )
    if running == plan.backend:
        ram_p.lines.append(
            (
                f"{cur}: {RAM_USABLE:.0%} of {plan.current.ram_gib:g} GiB",
                plan.current.ram_bytes * RAM_USABLE / GiB,
                _NOW,
            )
        )
    if plan.cluster:
        c = plan.cluster
        # One copy of the data fits in the nodes' usable RAM over the copies kept.
        usable = c.nodes * (c.node.ram_bytes * RAM_USABLE - GiB) / c.replication_factor
        ram_p.lines.append(
            (f"{c.nodes} x {c.node.name}, {c.replication_factor} copies", usable / GiB, _NEXT)
        )
    elif nxt:
        fits = model.memories_fitting(
            nxt.ram_bytes * RAM_USABLE / k, plan.disk_gb_recommended * 1e9
        )
        memories.lines.append((f"{nxt.name} holds {fits:,.0f}", fits, _NEXT))
        ram_p.lines.append(
            (
                f"recommended {nxt.name}: {RAM_USABLE:.0%} of {nxt.ram_gib:g} GiB",
                nxt.ram_bytes * RAM_USABLE / GiB,
                _NEXT,
            )
        )
    disk_p = Panel(
        "Disk",
        "GiB",
        *observed("disk_bytes", GiB, disk(mem.history)),
        ahead[0],
        disk(ahead[1]),
        disk(ahead[2]),
        disk(ahead[3]),
    )
    disk_p.lines += [
        (f"{DISK_USABLE:.0%} of the {plan.disk_gib:g} GiB volume", disk_now / GiB, _NOW),
        (
            f"{DISK_USABLE:.0%} of {plan.volumes} x {plan.disk_gb_recommended} GB"
            + (f", {plan.copies} copies" if plan.copies > 1 else ""),
            plan.volumes * plan.disk_gb_recommended * 1e9 * DISK_USABLE / plan.copies / GiB,
            _NEXT,
        ),
    ]
    out = [memories, ram_p, disk_p]
    cpu = plan.forecasts.get("cpu_percent")
    if cpu is not None:
        cpu_p = Panel(
            "CPU at the daily peak",
            "cores",
            cpu.history_at,
            cpu.history / 100,
            cpu.at[:h],
            cpu.mean[:h] / 100,
            cpu.lower[:h] / 100,
            cpu.upper[:h] / 100,
        )
        cpu_p.lines.append(
            (
                f"{cur}: {CPU_USABLE:.0%} of {plan.current.vcpu} vCPU",
                plan.current.vcpu * CPU_USABLE,
                _NOW,
            )
        )
        tier = plan.app or ((nxt, 1) if nxt else None)
        if tier:
            vcpu = tier[0].vcpu * tier[1]
            cpu_p.lines.append(
                (
                    f"recommended {tier[1]} x {tier[0].name}: {CPU_USABLE:.0%} of {vcpu} vCPU",
                    vcpu * CPU_USABLE,
                    _NEXT,
                )
            )
        out.append(cpu_p)
    end = mem.at[min(h, len(mem.at)) - 1]
    # Run-out dates are today's backend's: on the RAM and disk panels only when they show it.
    where = (
        {"memory": (0, 1), "disk": (2,), "CPU": (3,)}
        if running == plan.backend
        else {
            "memory": (0,),
            "CPU": (3,),
        }
    )
    for r in plan.runouts:
        if r.expected and r.expected <= end:
            for i in where.get(r.resource, ()):
                if i < len(out):
                    out[i].marks.append(
                        (r.expected, f"{r.resource} runs out {r.expected:%Y-%m-%d}")
                    )
    return out


def _title(plan: Plan) -> str:
    simulated = "SIMULATED history, " if "simulated" in plan.source else ""
    m = plan.forecasts["memories"]
    size = plan.chosen.instance.name if plan.chosen.instance else "nothing in the price table"
    if plan.cluster:
        size = f"{plan.cluster.nodes} x {plan.cluster.node.name} ({plan.cluster.kind})"
        if plan.app:
            size += f" + {plan.app[1]} x {plan.app[0].name} (membank)"
    return (
        f"membank capacity plan: {simulated}{plan.horizon_days}-day horizon, "
        f"{plan.confidence:.0%} band, {m.method} (fit error {m.error_pct:.1f} %)\n"
        f"recommended: {size}, {plan.disk_gb_recommended} GB disk, quantization "
        f"{plan.chosen.quantization}: "
        + (f"{plan.prices.currency} {plan.monthly_cost:,.0f} a month" if plan.monthly_cost else "-")
    )


def _count_formatter() -> object:
    from matplotlib.ticker import FuncFormatter

    def fmt(x: float, _pos: int) -> str:
        return f"{x / 1e6:g}M" if abs(x) >= 1e6 else f"{x / 1e3:g}k" if abs(x) >= 1e3 else f"{x:g}"

    return FuncFormatter(fmt)


def _png(plan: Plan, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, no GUI toolkit
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    ps = panels(plan)
    fig, axes = plt.subplots(2, 2, figsize=(14, 8.5), dpi=110, layout="constrained")
    fig.suptitle(_title(plan), fontsize=12, fontweight="bold")
    for ax, p in zip(axes.flat, ps, strict=False):
        ax.plot(p.history_at, p.history, color=_HISTORY, lw=1.4, label="history (daily peak)")
        ax.plot(p.at, p.mean, color=_FORECAST, lw=1.8, ls="--", label="forecast")
        ax.fill_between(
            p.at, p.lower, p.upper, color=_FORECAST, alpha=0.18, label=f"{plan.confidence:.0%} band"
        )
        for label, value, colour in p.lines:
            ax.axhline(value, color=colour, lw=1.3, label=label)
        if p.history_at:
            ax.axvline(p.history_at[-1], color="#7f8c8d", lw=0.8, ls=":")
            ax.annotate(
                "today",
                (p.history_at[-1], 0),
                xycoords=("data", "axes fraction"),
                xytext=(-30, 4),
                textcoords="offset points",
                color="#7f8c8d",
                fontsize=8,
            )
        for day, label in p.marks:
            ax.axvline(day, color=_NOW, lw=1.0, ls="-.")
            ax.annotate(
                label,
                (day, 0.04),
                xycoords=("data", "axes fraction"),
                xytext=(4, 0),
                textcoords="offset points",
                color=_NOW,
                fontsize=9,
                fontweight="bold",
                bbox={"boxstyle": "round", "fc": "white", "ec": _NOW, "alpha": 0.9},
            )
        ax.set_title(p.title, loc="left", fontsize=11)
        ax.set_ylabel(p.unit)
        if p.unit == "memories":
            ax.yaxis.set_major_formatter(_count_formatter())
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))  # type: ignore[no-untyped-call]
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
        ax.legend(fontsize=8, loc="upper left")
    for ax in axes.flat[len(ps) :]:
        ax.set_visible(False)
    fig.savefig(path)
    plt.close(fig)


def _html(plan: Plan, path: Path) -> None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    # Plain lists, not arrays: plotly would write arrays as base64, unreadable in the page.
    ps = panels(plan)
    fig = make_subplots(rows=2, cols=2, subplot_titles=[p.title for p in ps])
    for i, p in enumerate(ps):
        row, col = i // 2 + 1, i % 2 + 1
        band = f"{plan.confidence:.0%} band"
        fig.add_trace(
            go.Scatter(
                x=p.at + p.at[::-1],
                y=np.concatenate([p.upper, p.lower[::-1]]).tolist(),
                fill="toself",
                fillcolor="rgba(46,134,193,0.18)",
                line={"width": 0},
                name=band,
                showlegend=i == 0,
                legendgroup="band",
            ),
            row=row,
            col=col,
        )
        for name, xs_, ys, line in (
            ("history", p.history_at, p.history, {"color": _HISTORY}),
            ("forecast", p.at, p.mean, {"color": _FORECAST, "dash": "dash"}),
        ):
            fig.add_trace(
                go.Scatter(
                    x=xs_,
                    y=ys.tolist(),
                    name=name,
                    line=line,
                    showlegend=i == 0,
                    legendgroup=name,
                ),
                row=row,
                col=col,
            )
        xs = [p.history_at[0], p.at[-1]] if p.history_at and p.at else []
        for label, value, colour in p.lines:
            fig.add_trace(
                go.Scatter(
                    x=xs, y=[value, value], name=label, mode="lines", line={"color": colour}
                ),
                row=row,
                col=col,
            )
        for day, label in p.marks:
            fig.add_vline(
                x=day.timestamp() * 1000,
                line_dash="dashdot",
                line_color=_NOW,
                annotation_text=label,
                row=row,
                col=col,
            )
        fig.update_yaxes(title_text=p.unit, row=row, col=col)
    fig.update_layout(title=_title(plan).replace("\n", "<br>"), height=900, template="plotly_white")
    # The library inline: the page must open without a network (no CDN, no MathJax).
    fig.write_html(path, include_plotlyjs=True, include_mathjax=False, full_html=True)


def write_chart(plan: Plan, path: Path) -> None:
    """Write the chart; the format follows the suffix (``.png`` or ``.html``)."""
    suffix = path.suffix.lower()
    if suffix == ".png":
        _png(plan, path)
    elif suffix in (".html", ".htm"):
        _html(plan, path)
    else:
        raise ValueError(f"chart file {path}: use .png or .html")
