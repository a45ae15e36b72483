"""Background processes that chatctl starts, finds again and stops.

Each process has a record, a small JSON file in the state directory with its
pid and the kernel's start time of that pid. The start time is what makes
`alive` trustworthy: a pid that was reused by an unrelated process, or that
belongs to a zombie, does not count as our process being alive.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

POLL_INTERVAL_S = 0.05


@dataclass
class ProcessRecord:
    name: str
    pid: int
    start_ticks: int
    started_at: float
    log: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def alive(self) -> bool:
        return is_alive(self.pid, self.start_ticks)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        temporary.write_text(json.dumps(asdict(self), indent=2))
        os.replace(temporary, path)

    @classmethod
    def load(cls, path: Path) -> ProcessRecord | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (FileNotFoundError, json.JSONDecodeError, TypeError):
            return None


def start_ticks(pid: int) -> int | None:
    """When the process started, in clock ticks since boot; None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def is_alive(pid: int, ticks: int) -> bool:
    return start_ticks(pid) == ticks


def spawn(argv: Sequence[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Starts a process in its own session, detached from the terminal, output to log."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as output:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )


def record_for(name: str, process: subprocess.Popen[bytes], log: Path, **details: Any) -> ProcessRecord:
    ticks = start_ticks(process.pid)
    return ProcessRecord(name, process.pid, ticks or 0, time.time(), str(log), details)


def wait_gone(pid: int, ticks: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while is_alive(pid, ticks):
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_INTERVAL_S)
    return True


def stop(pid: int, ticks: int, timeout_s: float) -> str:
    """SIGTERM, then SIGKILL after timeout_s; says which it took."""
    if not is_alive(pid, ticks):
        return "not running"
    os.kill(pid, signal.SIGTERM)
    if wait_gone(pid, ticks, timeout_s):
        return "stopped"
    os.kill(pid, signal.SIGKILL)
    wait_gone(pid, ticks, timeout_s)
    return f"killed (did not stop within {timeout_s:.0f} s of SIGTERM)"
