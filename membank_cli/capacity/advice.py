"""The plan in sentences: run-out dates, what to move to, quantization, scaling out."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from membank_cli.capacity.plan import Plan, RunOut

__all__ = ["advise", "human_bytes"]

#: A Python server with one worker process keeps about this many cores busy
#: (the event loop, plus the embedder's own threads).
EDGE_MAX_CORES = 2.0


def human_bytes(n: float) -> str:
    for unit, size in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if abs(n) >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n:,.0f} B"


def _runout_sentence(r: RunOut, p: Plan) -> str | None:
    if r.expected is None and r.earliest is None:
        return None
    what = {"memory": "memory", "disk": "disk", "CPU": "CPU"}[r.resource]
    where = f"on {p.current.name}" + (
        " (assumed: the smallest size that fits today)" if p.current_assumed else ""
    )
    if r.resource == "disk":
        where = f"on a {p.disk_gib:,.0f} GiB volume"
    if r.expected is None:
        return f"{what} may run out {where} as early as {r.earliest:%Y-%m-%d} (upper band)"
    early = (
        f" (as early as {r.earliest:%Y-%m-%d})" if r.earliest and r.earliest < r.expected else ""
    )
    return f"{what} runs out on {r.expected:%Y-%m-%d}{early} {where}"


def advise(p: Plan) -> list[str]:
    """What an operator should read first, most urgent first."""
    out: list[str] = []
    if "simulated" in p.source:
        out.append("SIMULATED: these figures come from a generated history, not from your server")
    dated = [r for r in p.runouts if r.expected or r.earliest]
    dated.sort(key=lambda r: r.earliest or r.expected)  # type: ignore[arg-type, return-value]
    for r in dated:
        sentence = _runout_sentence(r, p)
        if sentence:
            out.append(sentence)
    if not dated:
        out.append(f"nothing runs out on {p.current.name} within the forecast")
    none, scalar = p.sizings[0], p.sizings[1]
    if p.chosen.instance is None:
        big = p.prices.largest()
        out.append(
            f"no size in the price table holds {p.memories_needed:,.0f} memories "
            f"({human_bytes(p.chosen.ram_bytes)} RAM) with {p.cores_needed:.1f} busy cores"
            + (
                f" on one machine (the largest, {big.name}, has {big.ram_gib:g} GiB and "
                f"{big.vcpu} vCPU): plan a cluster (--target-backend qdrant)"
                if p.backend == "edge"
                else ""
            )
        )
    if p.backend == "edge":
        if p.cores_needed > EDGE_MAX_CORES:
            out.append(
                f"the embedded store serves from one process: {p.cores_needed:.1f} cores at the "
                "horizon needs storage.backend=qdrant (or pgvector) with several servers in front"
            )
        q_model_ram = scalar.ram_per_memory
        out.append(
            f"quantization is not available on the embedded store; on storage.backend=qdrant "
            f"scalar int8 would keep {q_model_ram:,.0f} B a memory resident instead of "
            f"{none.ram_per_memory:,.0f} B"
        )
    elif scalar.available and none.monthly_cost and scalar.monthly_cost is not None:
        saved = none.monthly_cost - scalar.monthly_cost
        if saved > 0:
            out.append(
                f"scalar quantization ({'halfvec' if p.backend == 'pgvector' else 'int8'}) cuts "
                f"resident RAM from {none.ram_per_memory:,.0f} to {scalar.ram_per_memory:,.0f} B "
                f"a memory and saves {p.prices.currency} {saved:,.0f} a month at the horizon "
                "(recall drops about 1 % with rescoring on)"
            )
        else:
            out.append("quantization would not change the size needed: keep full vectors")
    if p.cluster and p.cluster.kind == "qdrant":
        c = p.cluster
        out.append(
            f"Qdrant cluster: {c.nodes} x {c.node.name}, shard_number={c.shard_number}, "
            f"replication_factor={c.replication_factor}"
        )
    for note in dict.fromkeys(n for f in p.forecasts.values() for n in f.notes):
        if not note.startswith("fitted on a log scale"):  # the method column says it
            out.append(note)
    if p.rss_factor > 1.05:
        out.append(
            f"your server's RSS is {p.rss_factor:.2f}x what the model expects for its memory "
            "count (bigger payloads than the calibration's?): RAM needs are scaled by it"
        )
    return out
