"""Where the load generator and the servers run: one core each, so neither steals from the other.

CPU time and memory of a process are read from outside (admin_cli.processes,
on psutil), so the servers need no instrumentation.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import psutil


def own_cpu_seconds() -> float:
    """CPU time of this process (the load generator), to tell when it is the bottleneck."""
    times = os.times()
    return times.user + times.system


@dataclass(frozen=True, slots=True)
class Placement:
    """Which core the load generator and the servers run on; None when not pinned."""

    generator_core: int | None
    server_core: int | None
    cpus: int

    @property
    def pinned(self) -> bool:
        return self.generator_core is not None


def plan_placement() -> Placement:
    """Two cores or more: generator on one, servers on another, so neither steals from the other."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return Placement(None, None, len(cores))
    return Placement(cores[0], cores[1], len(cores))


def pin(pid: int, core: int | None) -> None:
    """Pins every thread of a process (sched_setaffinity acts on one thread; new ones inherit it)."""
    if core is None:
        return
    try:
        tids = [thread.id for thread in psutil.Process(pid).threads()]
    except psutil.Error:
        return
    for tid in [pid, *tids]:
        with contextlib.suppress(ProcessLookupError):  # a thread that just ended
            os.sched_setaffinity(tid, {core})
