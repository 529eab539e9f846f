"""CircuitBreaker: stop calling a backend that keeps failing, and find out when it is back.

States::

    closed ──(N consecutive failures)──▶ open ──(cool-down passed)──▶ half-open
      ▲                                   ▲                              │
      └────────(trial call succeeds)──────┼──────────────────────────────┤
                                          └──(trial call fails; cool-down doubles, up to a cap)

While open, :meth:`CircuitBreaker.call` raises :class:`CacheUnavailable` without
invoking the wrapped call, so a dead Redis costs nothing per request. Once the
cool-down has passed, exactly one call goes through as a trial; every other call
keeps failing fast until that trial settles.

No library was used: none is installed, and the cache needs only this much.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar

from membank_server.domain.errors import CacheUnavailable

__all__ = ["BreakerState", "CircuitBreaker"]

_T = TypeVar("_T")
BreakerState = Literal["closed", "open", "half-open"]


class CircuitBreaker:
    """A circuit breaker for one backend, for use from one event loop.

    Args:
        name: The backend's label, used in error messages (``l2``).
        failure_threshold: Consecutive failures that open the breaker.
        cooldown: Seconds the breaker stays open the first time.
        max_cooldown: Cap on the cool-down, which doubles after each failed trial.
        failures: Exception types that count as a failure of the backend. Others
            (bugs, cancellation) pass through without changing the state.
        clock: Monotonic seconds; injectable for tests.
    """

    def __init__(
        self,
        name: str = "backend",
        *,
        failure_threshold: int = 5,
        cooldown: float = 1.0,
        max_cooldown: float = 30.0,
        failures: tuple[type[BaseException], ...] = (Exception,),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if not 0 < cooldown <= max_cooldown:
            raise ValueError("need 0 < cooldown <= max_cooldown")
        self.name = name
        self.failure_threshold = failure_threshold
        self.base_cooldown = cooldown
        self.max_cooldown = max_cooldown
        self._counted = failures
        self._clock = clock
        self._failures = 0
        self._cooldown = cooldown
        self._opened_at = -math.inf
        self._open = False
        self._trial_running = False

    @property
    def state(self) -> BreakerState:
        if not self._open:
            return "closed"
        if self._clock() - self._opened_at >= self._cooldown:
            return "half-open"
        return "open"

    @property
    def cooldown(self) -> float:
        """The cool-down the breaker waits (or will wait) while open."""
        return self._cooldown

    async def call(self, fn: Callable[[], Awaitable[_T]]) -> _T:
        """Run ``fn()`` unless the breaker is open.

        Raises:
            CacheUnavailable: the breaker is open, or half-open with a trial running.
                ``fn`` was not called.
            Exception: whatever ``fn()`` raised, unchanged (counted if listed in ``failures``).
        """
        trial = self._admit()
        try:
            result = await fn()
        except self._counted:
            self._failure(trial)
            raise
        except BaseException:
            if trial:
                # Not the backend's fault (a bug, a cancelled request): the trial
                # proved nothing, so let the next call try again.
                self._trial_running = False
            raise
        self._success()
        return result

    def _admit(self) -> bool:
        """Let a call through or raise; True when the call is the half-open trial."""
        state = self.state
        if state == "closed":
            return False
        if state == "half-open" and not self._trial_running:
            self._trial_running = True
            return True
        retry_in = max(0.0, self._opened_at + self._cooldown - self._clock())
        raise CacheUnavailable(
            f"{self.name}: circuit open after repeated failures; retrying in {retry_in:.2f}s",
            {"level": self.name, "breaker": state, "retry_in": retry_in},
        )

    def _success(self) -> None:
        self._failures = 0
        self._open = False
        self._trial_running = False
        self._cooldown = self.base_cooldown

    def _failure(self, trial: bool) -> None:
        if trial:
            self._trial_running = False
            self._cooldown = min(self._cooldown * 2, self.max_cooldown)
            self._opened_at = self._clock()
            return
        if self._open:
            # A call admitted before the breaker opened failed late: already counted.
            return
        self._failures += 1
        if self._failures >= self.failure_threshold:
            self._open = True
            self._opened_at = self._clock()
