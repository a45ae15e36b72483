"""Processes that chatctl, the tests and the benchmarks start, watch, find again and stop.

A process is known by its pid *and* its creation time (`ProcessId`): a pid
that was reused by an unrelated process, or that belongs to a zombie, does not
count as ours being alive. Detached processes leave a `ProcessRecord` (a small
JSON file) so that a later chatctl finds them; foreground children are
`Watched`, their output collected line by line so that a caller can wait for
the line that says they are ready. Every stop is the same: SIGTERM (or the
signal the process prefers), then SIGKILL once the grace is over.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

POLL_INTERVAL_S = 0.05


@dataclass(frozen=True, slots=True)
class ProcessId:
    pid: int
    created: float
    """psutil's creation time of the pid: what makes a recorded pid ours."""

    @classmethod
    def of(cls, pid: int) -> ProcessId | None:
        """The running process with this pid, or None if there is none (or a zombie)."""
        import psutil  # loaded on first use: chatctl's help and argument errors do not need it

        try:
            process = psutil.Process(pid)
            if process.status() == psutil.STATUS_ZOMBIE:
                return None
            return cls(pid, process.create_time())
        except psutil.Error:
            return None

    @property
    def alive(self) -> bool:
        return ProcessId.of(self.pid) == self

    def wait_gone(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self.alive:
            if time.monotonic() > deadline:
                return False
            time.sleep(POLL_INTERVAL_S)
        return True

    def send(self, signum: int) -> None:
        if self.alive:
            with suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def stop(self, grace_s: float, signum: int = signal.SIGTERM) -> str:
        """signum, then SIGKILL after grace_s; says which it took."""
        if not self.alive:
            return "not running"
        self.send(signum)
        if self.wait_gone(grace_s):
            return "stopped"
        self.send(signal.SIGKILL)
        self.wait_gone(grace_s)
        return f"killed (did not stop within {grace_s:g} s of {signal.Signals(signum).name})"


@dataclass
class ProcessRecord:
    """What chatctl remembers of a detached process, in the state directory."""

    name: str
    pid: int
    created: float
    started_at: float
    log: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def process(self) -> ProcessId:
        return ProcessId(self.pid, self.created)

    @property
    def alive(self) -> bool:
        return self.process.alive

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        temporary.write_text(json.dumps(asdict(self), indent=2))
        os.replace(temporary, path)

    @classmethod
    def load(cls, path: Path) -> ProcessRecord | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    @classmethod
    def of(cls, name: str, pid: int, log: Path | str, **details: Any) -> ProcessRecord:
        process = ProcessId.of(pid)
        created = process.created if process is not None else 0.0
        return cls(name, pid, created, time.time(), str(log), details)


def spawn(argv: Sequence[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Starts a process in its own session, detached from the terminal, output appended to log."""
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


class Watched:
    """A child process whose output (stdout and stderr) is collected as lines, with waits on them.

    With on_line, each line is handed to it (from a reader thread) instead of
    being kept: a long-running supervisor must not hold every line in memory.
    """

    def __init__(
        self,
        argv: Sequence[str],
        env: dict[str, str] | None = None,
        *,
        stdin: bool = False,
        stop_signal: int = signal.SIGTERM,
        on_line: Callable[[str], None] | None = None,
        **popen: Any,
    ) -> None:
        self.argv = list(argv)
        self.lines: list[str] = []
        self.stop_signal = stop_signal
        self._on_line = on_line
        self._changed = threading.Condition()
        self.process = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
            env=env,
            **popen,
        )
        self._reader = threading.Thread(target=self._read, name=f"output-{self.pid}", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if self._on_line is not None:
                self._on_line(line.rstrip("\n"))
                continue
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_for_line(self, predicate: Callable[[str], bool], timeout_s: float) -> str | None:
        """The first line satisfying predicate, waiting for it; None on timeout or once output ends."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                match = next((line for line in self.lines if predicate(line)), None)
                remaining = deadline - time.monotonic()
                if match is not None or remaining <= 0 or not self._reader.is_alive():
                    return match
                self._changed.wait(remaining)

    def wait_for(self, pattern: str, timeout_s: float) -> re.Match[str] | None:
        regex = re.compile(pattern)
        line = self.wait_for_line(lambda text: regex.search(text) is not None, timeout_s)
        return None if line is None else regex.search(line)

    def write_line(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()

    def send(self, signum: int) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signum)

    def wait(self, timeout_s: float) -> int:
        code = self.process.wait(timeout_s)
        self._reader.join(timeout_s)
        self._close_pipes()
        return code

    def stop(self, grace_s: float = 30.0) -> int:
        """stop_signal, then SIGKILL after grace_s; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(self.stop_signal)
            try:
                self.process.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.wait(grace_s)

    def _close_pipes(self) -> None:
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None and not pipe.closed:
                with suppress(BrokenPipeError):
                    pipe.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far, every thread."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def rss_bytes(pid: int) -> int:
    import psutil

    return int(psutil.Process(pid).memory_info().rss)
