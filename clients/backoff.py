"""Exponential backoff with jitter.

Each delay is drawn between half and all of an exponentially growing ceiling,
so that the clients of a restarted server spread their reconnects instead of
arriving together, and none waits much longer than the ceiling says.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    initial_s: float = 0.1
    max_s: float = 5.0
    multiplier: float = 2.0

    def delays(self) -> BackoffDelays:
        return BackoffDelays(self)


class BackoffDelays:
    def __init__(self, policy: Backoff) -> None:
        self._policy = policy
        self._attempt = 0

    def reset(self) -> None:
        self._attempt = 0

    def next(self) -> float:
        policy = self._policy
        ceiling = min(policy.max_s, policy.initial_s * policy.multiplier**self._attempt)
        self._attempt += 1
        return random.uniform(ceiling / 2, ceiling)
