"""How big each measurement is: the full benchmark, and --quick for a smoke check."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Sizes:
    runs: int = 3
    """Each figure is the median of this many runs."""
    fanout_subscribers: tuple[int, ...] = (10, 100, 1000)
    fanout_senders: tuple[int, ...] = (1, 4)
    window: int = 20
    """Notes a closed-loop sender may have that have not yet reached every subscriber."""
    warmup_s: float = 1.0
    measure_s: float = 5.0
    drain_timeout_s: float = 30.0
    paced_subscribers: int = 100
    """Figure 8 runs at this N with the most senders, at half of chatroom's rate there."""
    idle_sessions: int = 1000
    idle_measure_s: float = 5.0
    settle_s: float = 1.0
    send_senders: int = 8
    catchup_notes: int = 100_000
    backlog_concurrency: int = 32
    """SendNote calls in flight while the catch-up backlog is written."""
    catchup_timeout_s: float = 600.0
    max_sessions: int = 10_000
    sessions_per_group: int = 1000
    hold_s: float = 2.0
    """How long the max-sessions figure waits before checking the streams are still open."""
    burst_sessions: int = 5000
    """Streams opened all at once, unpaced (every client reconnecting after a restart)."""


FULL = Sizes()

QUICK = Sizes(
    runs=1,
    fanout_subscribers=(3, 10),
    warmup_s=0.2,
    measure_s=0.6,
    drain_timeout_s=10.0,
    paced_subscribers=10,
    idle_sessions=20,
    idle_measure_s=0.5,
    settle_s=0.2,
    catchup_notes=300,
    backlog_concurrency=8,
    catchup_timeout_s=60.0,
    max_sessions=60,
    sessions_per_group=30,
    hold_s=0.3,
    burst_sessions=40,
)
