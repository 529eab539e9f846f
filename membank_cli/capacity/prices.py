"""The price table: instance sizes with their monthly price, and block storage per GB.

The default, ``prices.toml`` beside this module, is an example list with its date;
``--prices FILE`` takes another in the same shape::

    date = "2024-06-01"
    currency = "USD"
    storage_per_gb_month = 0.08
    [[instance]]
    name = "m7i.large"
    vcpu = 2
    ram_gib = 8
    per_month = 73.58
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from membank_server.domain.errors import ConfigError

__all__ = ["DEFAULT_PRICES", "Instance", "PriceTable", "load_prices"]

DEFAULT_PRICES = Path(__file__).with_name("prices.toml")
GiB = 1024**3


@dataclass(frozen=True)
class Instance:
    name: str
    vcpu: int
    ram_gib: float
    per_month: float

    @property
    def ram_bytes(self) -> float:
        return self.ram_gib * GiB


@dataclass(frozen=True)
class PriceTable:
    instances: tuple[Instance, ...]
    storage_per_gb_month: float
    currency: str
    date: str
    note: str
    source: str

    def cheapest(self, fits: Callable[[Instance], bool]) -> Instance | None:
        """The cheapest instance ``fits`` accepts (fewest vCPU, then least RAM, on a tie)."""
        ok = [i for i in self.instances if fits(i)]
        return min(ok, key=lambda i: (i.per_month, i.vcpu, i.ram_gib)) if ok else None

    def largest(self) -> Instance:
        return max(self.instances, key=lambda i: (i.ram_gib, i.vcpu))

    def by_name(self, name: str) -> Instance:
        for i in self.instances:
            if i.name == name:
                return i
        known = ", ".join(i.name for i in self.instances)
        raise ConfigError(f"no instance {name!r} in the price table ({self.source}): {known}")


def load_prices(path: Path | None = None) -> PriceTable:
    """Read a price table (the default example list when ``path`` is None).

    Raises:
        ConfigError: the file is missing, not TOML, or lacks a field.
    """
    where = path or DEFAULT_PRICES
    try:
        data = tomllib.loads(where.read_text())
        instances = tuple(
            Instance(str(i["name"]), int(i["vcpu"]), float(i["ram_gib"]), float(i["per_month"]))
            for i in data["instance"]
        )
        table = PriceTable(
            instances=instances,
            storage_per_gb_month=float(data["storage_per_gb_month"]),
            currency=str(data.get("currency", "USD")),
            date=str(data.get("date", "undated")),
            note=str(data.get("note", "")),
            source=str(where),
        )
    except FileNotFoundError as exc:
        raise ConfigError(f"price table {where} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"price table {where} is not valid TOML: {exc}") from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"price table {where}: missing or bad field {exc}") from exc
    if not instances:
        raise ConfigError(f"price table {where} lists no instance")
    return table
