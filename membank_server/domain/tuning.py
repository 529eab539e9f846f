"""Runtime tunables: what the tuner may change, within which bounds, and whether it is live.

A :class:`Tunable` is one setting as the server reports it (``GET
/v1/admin/tunables``): its value, the bounds the operator configured, and whether
the server can change it while it runs. A change that needs a restart (worker
count, pool sizes) is only ever proposed.
"""

from __future__ import annotations

from dataclasses import dataclass

from membank_server.domain.errors import InvalidInput

__all__ = ["Bounds", "Tunable"]


@dataclass(frozen=True, slots=True)
class Bounds:
    """Where a tunable may go: ``minimum <= value <= maximum``, moved by ``step`` at least."""

    minimum: float
    maximum: float
    step: float

    def __post_init__(self) -> None:
        if not (self.minimum <= self.maximum and self.step > 0):
            raise InvalidInput(
                f"tunable bounds need minimum <= maximum and step > 0, not "
                f"{self.minimum}, {self.maximum}, {self.step}"
            )

    def check(self, name: str, value: float) -> None:
        if not self.minimum <= value <= self.maximum:
            raise InvalidInput(
                f"{name} must stay within [{self.minimum:g}, {self.maximum:g}], not {value:g}"
            )


@dataclass(frozen=True, slots=True)
class Tunable:
    """One runtime setting.

    Attributes:
        name: The setting's name (``cache.l1_max_entries``).
        value: Its value now.
        live: True when the server applies a change at once; False when it takes a
            restart (proposed only).
        integer: Whole numbers only.
    """

    name: str
    value: float
    bounds: Bounds
    live: bool
    integer: bool = True
    help: str = ""
