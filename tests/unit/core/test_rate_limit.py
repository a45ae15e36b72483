"""The token bucket of each member, on a clock the test moves."""

from __future__ import annotations

from services.core.rate_limit import PRUNE_ABOVE, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_the_rate_and_when_to_retry() -> None:
    clock = Clock()
    limiter = RateLimiter(rate_per_s=2.0, burst=3, clock=clock)
    assert [limiter.take("alice") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("alice") == 0.5  # one token every half second
    assert limiter.take("bob") == 0.0  # a bucket each
    clock.now += 0.5
    assert limiter.take("alice") == 0.0
    clock.now += 10
    assert [limiter.take("alice") for _ in range(4)] == [0.0, 0.0, 0.0, 0.5]  # full again, no more


def test_quiet_members_are_forgotten_once_there_are_many() -> None:
    clock = Clock()
    limiter = RateLimiter(rate_per_s=1.0, burst=1, clock=clock)
    for i in range(PRUNE_ABOVE):
        limiter.take(f"m{i}")
    clock.now += 2  # every bucket is full again: nothing to remember
    limiter.take("newcomer")
    assert len(limiter) == 1
