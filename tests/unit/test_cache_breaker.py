"""CircuitBreaker state machine on a fake clock (no I/O, no sleeping)."""

from __future__ import annotations

import asyncio

import pytest

from membank_server.cache.breaker import CircuitBreaker
from membank_server.domain.errors import CacheUnavailable

__all__: list[str] = []


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Backend:
    """A wrapped call that fails on demand and counts how often it was invoked."""

    def __init__(self) -> None:
        self.calls = 0
        self.down = False

    async def __call__(self) -> str:
        self.calls += 1
        if self.down:
            raise ConnectionError("backend down")
        return "ok"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def backend() -> Backend:
    return Backend()


@pytest.fixture
def breaker(clock: Clock) -> CircuitBreaker:
    return CircuitBreaker(
        "l2",
        failure_threshold=3,
        cooldown=1.0,
        max_cooldown=5.0,
        failures=(ConnectionError,),
        clock=clock,
    )


async def _fail(breaker: CircuitBreaker, backend: Backend, times: int) -> None:
    backend.down = True
    for _ in range(times):
        with pytest.raises(ConnectionError):
            await breaker.call(backend)


async def test_opens_after_threshold_consecutive_failures(
    breaker: CircuitBreaker, backend: Backend
) -> None:
    await _fail(breaker, backend, 2)
    assert breaker.state == "closed"
    await _fail(breaker, backend, 1)
    assert breaker.state == "open"
    assert backend.calls == 3


async def test_a_success_resets_the_failure_count(
    breaker: CircuitBreaker, backend: Backend
) -> None:
    await _fail(breaker, backend, 2)
    backend.down = False
    assert await breaker.call(backend) == "ok"
    await _fail(breaker, backend, 2)
    assert breaker.state == "closed"


async def test_fails_fast_while_open_without_invoking_the_call(
    breaker: CircuitBreaker, backend: Backend, clock: Clock
) -> None:
    await _fail(breaker, backend, 3)
    backend.down = False
    clock.now += 0.99
    for _ in range(10):
        with pytest.raises(CacheUnavailable) as info:
            await breaker.call(backend)
        assert info.value.details["breaker"] == "open"
    assert backend.calls == 3


async def test_half_open_lets_one_trial_through_and_closes_on_success(
    breaker: CircuitBreaker, backend: Backend, clock: Clock
) -> None:
    await _fail(breaker, backend, 3)
    clock.now += 1.0
    assert breaker.state == "half-open"
    backend.down = False
    release = asyncio.Event()

    async def slow_trial() -> str:
        await release.wait()
        return await backend()

    trial = asyncio.create_task(breaker.call(slow_trial))
    await asyncio.sleep(0)
    # While the trial is out, everyone else still fails fast.
    with pytest.raises(CacheUnavailable):
        await breaker.call(backend)
    assert backend.calls == 3
    release.set()
    assert await trial == "ok"
    assert breaker.state == "closed"
    assert await breaker.call(backend) == "ok"


async def test_failed_trial_reopens_with_doubled_cooldown_up_to_the_cap(
    breaker: CircuitBreaker, backend: Backend, clock: Clock
) -> None:
    await _fail(breaker, backend, 3)
    seen: list[float] = []
    for _ in range(5):
        clock.now += breaker.cooldown
        assert breaker.state == "half-open"
        await _fail(breaker, backend, 1)
        assert breaker.state == "open"
        seen.append(breaker.cooldown)
    assert seen == [2.0, 4.0, 5.0, 5.0, 5.0]
    # Just short of the cool-down: still open, the call is not made.
    calls = backend.calls
    clock.now += 4.99
    with pytest.raises(CacheUnavailable):
        await breaker.call(backend)
    assert backend.calls == calls


async def test_success_after_recovery_resets_the_cooldown(
    breaker: CircuitBreaker, backend: Backend, clock: Clock
) -> None:
    await _fail(breaker, backend, 3)
    clock.now += 1.0
    await _fail(breaker, backend, 1)
    assert breaker.cooldown == 2.0
    clock.now += 2.0
    backend.down = False
    assert await breaker.call(backend) == "ok"
    assert breaker.cooldown == 1.0
    # Opening again starts from the base cool-down.
    await _fail(breaker, backend, 3)
    clock.now += 1.0
    assert breaker.state == "half-open"


async def test_uncounted_errors_pass_through_without_tripping(
    breaker: CircuitBreaker, clock: Clock
) -> None:
    async def bug() -> None:
        raise ValueError("a bug, not an outage")

    for _ in range(5):
        with pytest.raises(ValueError, match="a bug"):
            await breaker.call(bug)
    assert breaker.state == "closed"


async def test_a_trial_that_proves_nothing_frees_the_slot(
    breaker: CircuitBreaker, backend: Backend, clock: Clock
) -> None:
    await _fail(breaker, backend, 3)
    clock.now += 1.0

    async def cancelled() -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await breaker.call(cancelled)
    assert breaker.state == "half-open"
    backend.down = False
    assert await breaker.call(backend) == "ok"
    assert breaker.state == "closed"


def test_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker(failure_threshold=0)
    with pytest.raises(ValueError, match="cooldown"):
        CircuitBreaker(cooldown=10.0, max_cooldown=1.0)
