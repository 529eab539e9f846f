"""The tunables of a running server: read them, and change a live one within its bounds.

``bootstrap`` gives every knob a reader, a setter when the server can apply a
change at once (None when it takes a restart: such a change is refused here and
only ever proposed by the tuner), its bounds (``observe.tunables`` over the
defaults) and a line of help. Every applied change is written to the tuning
journal with its session.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from membank_server.domain.errors import Conflict, InvalidInput, NotFound
from membank_server.domain.observe import HistoryStore, TuningEvent
from membank_server.domain.tuning import Bounds, Tunable

__all__ = ["Knob", "TunableService"]


@dataclass(frozen=True)
class Knob:
    name: str
    read: Callable[[], float]
    write: Callable[[float], None] | None
    bounds: Bounds
    help: str
    integer: bool = True


class TunableService:
    def __init__(self, knobs: list[Knob], history: HistoryStore) -> None:
        self._knobs = {k.name: k for k in knobs}
        self._history = history

    def _tunable(self, k: Knob) -> Tunable:
        return Tunable(k.name, k.read(), k.bounds, k.write is not None, k.integer, k.help)

    def list(self) -> list[Tunable]:
        return [self._tunable(k) for k in self._knobs.values()]

    async def apply(self, name: str, value: float, *, session: str, note: str) -> Tunable:
        """Set a live tunable now.

        Raises:
            NotFound: no such tunable.
            Conflict: the value is outside the bounds the server was configured with,
                or not whole for a count (a valid number this tunable refuses); or it
                takes a restart: propose it, do not apply it.
        """
        knob = self._knobs.get(name)
        if knob is None:
            raise NotFound(f"no tunable {name!r}: one of {', '.join(self._knobs)}")
        if knob.integer and value != int(value):
            raise Conflict(f"{name} takes a whole number, not {value:g}")
        try:
            knob.bounds.check(name, value)
        except InvalidInput as exc:
            raise Conflict(exc.message) from exc
        if knob.write is None:
            raise Conflict(f"{name} takes a restart: change the setting and restart the server")
        old = knob.read()
        knob.write(value)
        await self._history.add_tuning(
            TuningEvent(datetime.now(UTC), session, "applied", name, old, value, note=note)
        )
        return self._tunable(knob)
