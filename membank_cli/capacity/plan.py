"""From forecasts to a plan: when each resource runs out, what to run next, what it costs.

Sizing is for the need at the horizon: the forecast's upper band (at the chosen
confidence) times one plus the growth buffer. RAM and disk come from the
:class:`~membank_cli.capacity.model.MemoryModel` applied to the forecast memory
count (scaled up when the history's RSS shows more than the model says); CPU
from the CPU history, or the request rate over ``rps_per_core`` when CPU was not
sampled. Run-out dates are when the forecast (expected) and its upper band
(earliest) first cross what the current machine can give.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from membank_cli.capacity.advice import advise
from membank_cli.capacity.forecast import Forecast
from membank_cli.capacity.model import BACKENDS, QUANTIZATIONS, Backend, MemoryModel, Quantization
from membank_cli.capacity.prices import GiB, Instance, PriceTable

__all__ = [
    "CPU_USABLE",
    "DISK_USABLE",
    "RAM_USABLE",
    "Cluster",
    "Plan",
    "RunOut",
    "Sizing",
    "make_plan",
]

#: Share of an instance's RAM to plan on: the OS, page cache for what is not resident.
RAM_USABLE = 0.80
#: Share of its vCPUs busy at peak: past ~70 % latency climbs.
CPU_USABLE = 0.70
#: Share of a volume to fill: segment optimization writes a copy before it deletes.
DISK_USABLE = 0.75
#: Binary quantization loses too much recall on small embeddings (Qdrant's guidance).
BINARY_MIN_DIMENSION = 1024
#: Copies of the store kept for availability (Qdrant replication factor; PostgreSQL
#: primary and standby).
STORE_COPIES = 2


@dataclass(frozen=True)
class RunOut:
    resource: str
    unit: str
    capacity: float
    today: float
    needed: float
    expected: datetime | None
    earliest: datetime | None


@dataclass(frozen=True)
class Sizing:
    """What the need at the horizon takes with one quantization."""

    quantization: Quantization
    ram_per_memory: float
    ram_bytes: float
    instance: Instance | None
    count: int
    monthly_cost: float | None
    available: bool
    why_not: str = ""


@dataclass(frozen=True)
class Cluster:
    """A Qdrant cluster (or a PostgreSQL primary and standby) for the store."""

    kind: str
    node: Instance
    nodes: int
    shard_number: int
    replication_factor: int
    monthly_cost: float


@dataclass(frozen=True)
class Plan:
    source: str
    backend: Backend
    dimension: int
    horizon_days: int
    confidence: float
    growth_buffer: float
    prices: PriceTable
    forecasts: dict[str, Forecast]
    current: Instance
    current_assumed: bool
    disk_gib: float
    memories_needed: float
    cores_needed: float
    disk_needed: float
    rss_factor: float
    runouts: list[RunOut]
    sizings: list[Sizing]
    chosen: Sizing
    app: tuple[Instance, int] | None
    cluster: Cluster | None
    disk_gb_recommended: int
    #: Volumes of ``disk_gb_recommended`` (one a store node), and how many copies they hold.
    volumes: int
    copies: int
    history_backend: str
    #: None when nothing in the price table holds the need.
    monthly_cost: float | None
    advice: list[str] = field(default_factory=list)


def _need(f: Forecast, days: int, buffer: float) -> float:
    return f.at_day(days, "upper") * (1 + buffer)


def _cores(forecasts: dict[str, Forecast], days: int, buffer: float, rps_per_core: float) -> float:
    """Cores busy at the daily peak: measured CPU when sampled, else requests over a rate."""
    cpu = forecasts.get("cpu_percent")
    if cpu is not None:
        return _need(cpu, days, buffer) / 100 if days else float(cpu.history[-1]) / 100
    rps = forecasts.get("rps")
    if rps is None:
        return 0.0
    return (_need(rps, days, buffer) if days else float(rps.history[-1])) / rps_per_core


def _fits(ram: float, cores: float) -> Callable[[Instance], bool]:
    return lambda i: i.ram_bytes * RAM_USABLE >= ram and i.vcpu * CPU_USABLE >= cores


def _store_cluster(kind: str, data_ram: float, prices: PriceTable) -> Cluster | None:
    """The cheapest set of equal nodes holding ``STORE_COPIES`` copies of ``data_ram``."""
    best: Cluster | None = None
    for node in prices.instances:
        usable = node.ram_bytes * RAM_USABLE - GiB  # a GiB for the store process itself
        if usable <= 0:
            continue
        nodes = max(STORE_COPIES, math.ceil(data_ram * STORE_COPIES / usable))
        if kind == "postgres" and nodes > STORE_COPIES:
            continue  # one primary holds it all: a standby is a copy, not a shard
        cost = nodes * node.per_month
        if best is None or (cost, nodes) < (best.monthly_cost, best.nodes):
            # One shard a node: each node leads one, and holds a replica of another.
            best = Cluster(kind, node, nodes, nodes if kind == "qdrant" else 1, STORE_COPIES, cost)
    return best


def _sizing(
    model: MemoryModel, memories: float, cores: float, factor: float, prices: PriceTable
) -> Sizing:
    q = model.quantization
    why = ""
    if model.backend == "edge" and q != "none":
        why = "the embedded store has no quantization setting (use storage.backend=qdrant)"
    elif q == "binary" and model.dimension < BINARY_MIN_DIMENSION:
        why = f"binary loses too much recall below {BINARY_MIN_DIMENSION} dimensions"
    ram = model.ram_bytes(memories) * factor
    if model.backend == "edge":
        inst = prices.cheapest(_fits(ram, cores))
        cost = inst.per_month if inst else None
        return Sizing(q, model.ram_per_memory(), ram, inst, 1, cost, not why, why)
    kind = "qdrant" if model.backend == "qdrant" else "postgres"
    cluster = _store_cluster(kind, ram - model.fixed_ram(), prices)
    cost = cluster.monthly_cost if cluster else None
    node = cluster.node if cluster else None
    return Sizing(
        q, model.ram_per_memory(), ram, node, cluster.nodes if cluster else 0, cost, not why, why
    )


def make_plan(
    forecasts: dict[str, Forecast],
    *,
    source: str,
    backend: Backend,
    history_backend: str,
    dimension: int,
    horizon_days: int,
    confidence: float,
    growth_buffer: float,
    prices: PriceTable,
    current: Instance | None = None,
    disk_gib: float = 100.0,
    rps_per_core: float = 110.0,
) -> Plan:
    """Size the deployment for ``horizon_days`` ahead on ``backend`` and price it."""
    mem = forecasts["memories"]
    memories_now = float(mem.history[-1])
    memories_needed = _need(mem, horizon_days, growth_buffer)
    cores_needed = _cores(forecasts, horizon_days, growth_buffer, rps_per_core)
    base = MemoryModel(backend=backend, dimension=dimension)
    # The model is calibrated on our bodies; a deployment with bigger payloads shows it in RSS.
    factor = 1.0
    if "rss_bytes" in forecasts and history_backend == backend == "edge":
        factor = max(1.0, float(forecasts["rss_bytes"].history[-1]) / base.ram_bytes(memories_now))
    cores_now = _cores(forecasts, 0, 0.0, rps_per_core)
    # Run-out dates are for what runs today; sizing is for the target backend.
    running = history_backend if history_backend in BACKENDS else backend
    now_model = MemoryModel(backend=running, dimension=dimension)
    assumed = current is None
    if current is None:
        need_now = now_model.ram_bytes(memories_now) * factor
        current = prices.cheapest(_fits(need_now, cores_now)) or prices.largest()
    runouts = _runouts(forecasts, now_model, factor, current, disk_gib, growth_buffer, horizon_days)
    sizings = [
        _sizing(
            MemoryModel(backend=backend, dimension=dimension, quantization=q),
            memories_needed,
            cores_needed,
            factor,
            prices,
        )
        for q in QUANTIZATIONS
    ]
    usable = [s for s in sizings if s.available and s.monthly_cost is not None]
    chosen = (
        min(usable, key=lambda s: (s.monthly_cost or 0, s.quantization != "none"))
        if usable
        else sizings[0]
    )
    chosen_model = MemoryModel(
        backend=backend, dimension=dimension, quantization=chosen.quantization
    )
    disk_needed = chosen_model.disk_bytes(memories_needed)
    if "disk_bytes" in forecasts and history_backend == backend:
        disk_needed = max(disk_needed, _need(forecasts["disk_bytes"], horizon_days, growth_buffer))
    app: tuple[Instance, int] | None = None
    cluster: Cluster | None = None
    volumes, per_volume = 1, disk_needed
    cost = chosen.monthly_cost
    if backend != "edge":
        # Stateless membank servers in front of the store, at least two for availability.
        app_node = (
            prices.cheapest(lambda i: i.ram_bytes * RAM_USABLE >= base.fixed_ram() and i.vcpu >= 2)
            or prices.largest()
        )
        replicas = max(2, math.ceil(cores_needed / (app_node.vcpu * CPU_USABLE)))
        app = (app_node, replicas)
        kind = "qdrant" if backend == "qdrant" else "postgres"
        cluster = _store_cluster(kind, chosen.ram_bytes - base.fixed_ram(), prices)
        volumes = cluster.nodes if cluster else STORE_COPIES
        # Qdrant spreads the copies over its nodes; a PostgreSQL standby holds it all.
        per_volume = disk_needed * STORE_COPIES / volumes if kind == "qdrant" else disk_needed
        if cost is not None:
            cost += app_node.per_month * replicas
    disk_gb = max(10, math.ceil(per_volume / DISK_USABLE / 1e9 / 10) * 10)
    if cost is not None:
        cost += disk_gb * prices.storage_per_gb_month * volumes
    plan = Plan(
        source=source,
        backend=backend,
        dimension=dimension,
        horizon_days=horizon_days,
        confidence=confidence,
        growth_buffer=growth_buffer,
        prices=prices,
        forecasts=forecasts,
        current=current,
        current_assumed=assumed,
        disk_gib=disk_gib,
        memories_needed=memories_needed,
        cores_needed=cores_needed,
        disk_needed=disk_needed,
        rss_factor=factor,
        runouts=runouts,
        sizings=sizings,
        chosen=chosen,
        app=app,
        cluster=cluster,
        disk_gb_recommended=disk_gb,
        volumes=volumes,
        copies=STORE_COPIES if backend != "edge" else 1,
        history_backend=history_backend,
        monthly_cost=cost,
    )
    plan.advice.extend(advise(plan))
    return plan


def _runouts(
    forecasts: dict[str, Forecast],
    model: MemoryModel,
    factor: float,
    current: Instance,
    disk_gib: float,
    buffer: float,
    days: int,
) -> list[RunOut]:
    mem = forecasts["memories"]
    out = []
    ram_cap = current.ram_bytes * RAM_USABLE
    limit = (ram_cap / factor - model.fixed_ram()) / model.ram_per_memory()
    out.append(
        RunOut(
            "memory",
            "bytes",
            ram_cap,
            model.ram_bytes(float(mem.history[-1])) * factor,
            model.ram_bytes(_need(mem, days, buffer)) * factor,
            mem.first_above(limit),
            mem.first_above(limit, "upper"),
        )
    )
    disk_cap = disk_gib * GiB * DISK_USABLE
    disk_limit = (disk_cap - model.fixed_disk()) / model.disk_per_memory()
    out.append(
        RunOut(
            "disk",
            "bytes",
            disk_cap,
            model.disk_bytes(float(mem.history[-1])),
            model.disk_bytes(_need(mem, days, buffer)),
            mem.first_above(disk_limit),
            mem.first_above(disk_limit, "upper"),
        )
    )
    cpu = forecasts.get("cpu_percent")
    if cpu is not None and cpu.history.max() > 0:
        cap = current.vcpu * 100 * CPU_USABLE
        out.append(
            RunOut(
                "CPU",
                "percent",
                cap,
                float(cpu.history[-7:].max()),
                _need(cpu, days, buffer),
                cpu.first_above(cap),
                cpu.first_above(cap, "upper"),
            )
        )
    return out
