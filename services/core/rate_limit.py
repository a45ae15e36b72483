"""Notes per second per member: a token bucket each.

A member may send `burst` notes at once and `rate_per_s` a second on
average. Buckets of members who have been quiet long enough to be full again
carry no information and are dropped, so memory follows the active members.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

PRUNE_ABOVE = 10_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def __len__(self) -> int:
        """Members whose bucket is remembered."""
        return len(self._buckets)

    def take(self, member: str) -> float:
        """Takes one token: 0 if allowed, else the seconds until one is available."""
        now = self._clock()
        bucket = self._buckets.get(member)
        if bucket is None:
            if len(self._buckets) >= PRUNE_ABOVE:
                self._prune(now)
            bucket = self._buckets[member] = _Bucket(float(self.burst), now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate_per_s)
        bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.rate_per_s

    def _prune(self, now: float) -> None:
        full_after_s = self.burst / self.rate_per_s
        self._buckets = {m: b for m, b in self._buckets.items() if now - b.updated < full_after_s}
