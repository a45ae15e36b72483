"""What the kernel says about a process: CPU time, resident memory, CPU placement.

Read from /proc so that the servers need no instrumentation: utime + stime of
/proc/<pid>/stat cover every thread (gRPC's, SQLite's), and VmRSS is what the
process really holds in memory.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far, all threads."""
    with open(f"/proc/{pid}/stat") as stat:
        data = stat.read()
    # The command name may contain spaces; the fields after it do not.
    fields = data[data.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    """Resident set size (VmRSS)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


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
        tids = [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]
    except FileNotFoundError:
        return
    for tid in [pid, *tids]:
        with contextlib.suppress(ProcessLookupError):  # a thread that just ended
            os.sched_setaffinity(tid, {core})
