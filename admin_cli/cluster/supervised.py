"""One supervised process of a cluster and its state machine.

    starting ──ready──▶ running ──exit──▶ backoff ──delay──▶ starting …
        │                  │                 └─ too many fast failures ─▶ failed
        │                  └─ exit, policy says no more ─▶ exited
        └─ stop (any state) ─▶ stopped

`starting` covers both the wait for what the process depends on (its gate:
storage for a server, a SERVING replica for a client) and the time until it
is ready, which each kind defines: a server when its gRPC health says
SERVING, a client when its console printed that it subscribed, PostgreSQL
when it accepts connections. Restarts follow admin_cli/restarts.py, the same
policy as `client start --restart`.
"""

from __future__ import annotations

import asyncio
import signal
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

from admin_cli.cluster.events import EventLog
from admin_cli.cluster.logs import MergedLog
from admin_cli.processes import Watched
from admin_cli.restarts import RestartPolicy, Restarts, describe_exit

EXIT_POLL_S = 0.05
SUPERVISOR = "cluster"
"""The name the supervisor's own remarks carry in the merged log."""


class Kind(StrEnum):
    STORAGE = "storage"
    SERVER = "server"
    CLIENT = "client"


class State(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"
    FAILED = "failed"
    STOPPED = "stopped"
    EXITED = "exited"


@dataclass(frozen=True, slots=True)
class Launch:
    argv: list[str]
    env: dict[str, str]
    stop_signal: int = signal.SIGTERM
    stop_grace_s: float = 15.0
    """Longer than a server's default drain (10 s), so that a drain is not cut short."""


@dataclass(frozen=True, slots=True)
class Outputs:
    """Where every process of the cluster reports: the merged log and the events."""

    merged: MergedLog
    events: EventLog

    def remark(self, text: str) -> None:
        self.merged.write(SUPERVISOR, text)


class Supervised:
    """A process kept running by its policy; subclasses say how to launch it and when it is ready."""

    kind: Kind

    def __init__(self, name: str, log: Path, policy: RestartPolicy, outputs: Outputs) -> None:
        self.name = name
        self.log = log
        self.outputs = outputs
        self.restarts = Restarts(policy)
        self.state = State.STOPPED
        self.watched: Watched | None = None
        self.started_at = 0.0
        self.last_exit = ""
        self.retry_at = 0.0
        self.wanted = False
        self._launch = Launch([], {})
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._loop = asyncio.get_running_loop()

    # -- what each kind defines ----------------------------------------------

    def launch(self) -> Launch:
        raise NotImplementedError

    async def gate(self) -> None:
        """Returns once what the process depends on is ready."""

    async def become_ready(self) -> None:
        """Returns once the process is ready."""

    async def while_running(self) -> None:
        """Watches the process once it is ready; cancelled when it exits."""

    def on_output(self, line: str) -> None:
        """Each line of output, on the event loop."""

    # -- the state machine ---------------------------------------------------

    @property
    def pid(self) -> int:
        alive = self.watched is not None and self.watched.process.poll() is None
        return self.watched.pid if alive and self.watched is not None else 0

    @property
    def uptime_s(self) -> float:
        return time.monotonic() - self.started_at if self.pid else 0.0

    @property
    def retry_in_s(self) -> float:
        return max(0.0, self.retry_at - time.monotonic()) if self.state is State.BACKOFF else 0.0

    def start(self) -> None:
        """Keeps the process running from now on (again, if it had stopped or failed)."""
        self.wanted = True
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._supervise(), name=f"supervise-{self.name}")

    async def stop(self) -> str:
        """SIGTERM (or the kind's signal), then SIGKILL after its grace; says which it took."""
        self.wanted = False
        self._wake.set()
        outcome = "not running"
        watched = self.watched
        if watched is not None and watched.process.poll() is None:
            outcome = await self._terminate(watched)
        if self._task is not None:
            await self._task
        self.state = State.STOPPED
        return outcome

    async def restart(self) -> None:
        await self.stop()
        self.restarts.restarting()
        self.start()

    def kill(self, signum: int) -> int:
        """Signals the process as an outsider would; its restart policy then applies."""
        pid = self.pid
        if pid and self.watched is not None:
            self.watched.send(signum)
        return pid

    async def _terminate(self, watched: Watched) -> str:
        launch = self._launch
        watched.send(launch.stop_signal)
        if await self._exited(watched, launch.stop_grace_s):
            return "stopped"
        watched.send(signal.SIGKILL)
        await self._exited(watched, launch.stop_grace_s)
        return f"killed (did not stop within {launch.stop_grace_s:g} s)"

    @staticmethod
    async def _exited(watched: Watched, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while watched.process.poll() is None:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(EXIT_POLL_S)
        return True

    async def _supervise(self) -> None:
        while self.wanted:
            self.state = State.STARTING
            await self._until_stopped(self.gate())
            if not self.wanted:
                break
            code = await self._run_once()
            self.last_exit = describe_exit(code)
            self._event("exited", self.last_exit, code=code)
            if not self.wanted:
                break
            verdict = self.restarts.after_exit(code)
            if verdict.gave_up:
                self.state = State.FAILED
                self._event("failed", f"{self.last_exit}, too many times in a row")
                return
            if verdict.restart_in_s is None:
                self.state = State.EXITED
                return
            self.state = State.BACKOFF
            self.retry_at = time.monotonic() + verdict.restart_in_s
            self._event(
                "restarting", f"in {verdict.restart_in_s:.1f} s", delay_s=round(verdict.restart_in_s, 2)
            )
            await self._until_stopped(asyncio.sleep(verdict.restart_in_s))
            if self.wanted:
                self.restarts.restarting()
        self.state = State.STOPPED

    async def _run_once(self) -> int:
        self._launch = launch = self.launch()
        self.log.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log, "a", buffering=1, errors="replace")  # noqa: SIM115 (closed below)
        try:
            watched = Watched(
                launch.argv,
                launch.env,
                on_line=lambda line: self._output(log, line),
                start_new_session=True,  # Ctrl-C in the terminal reaches the supervisor only
            )
        except OSError as error:
            log.close()
            self._event("exited", f"cannot start: {error}")
            return 127
        self.watched = watched
        self.started_at = time.monotonic()
        self.restarts.started()
        self._event("started", f"pid {watched.pid}", pid=watched.pid)
        ready = asyncio.create_task(self._ready(), name=f"ready-{self.name}")
        try:
            await self._exited(watched, float("inf"))
        finally:
            ready.cancel()
            await asyncio.gather(ready, return_exceptions=True)
            code = await asyncio.to_thread(watched.wait, 5.0)
            log.close()
        return code

    async def _ready(self) -> None:
        await self.become_ready()
        if self.state is State.STARTING:
            self.state = State.RUNNING
            self._event("ready", self.ready_detail())
        await self.while_running()

    def ready_detail(self) -> str:
        return ""

    async def _until_stopped(self, waiting: Any) -> None:
        """Awaits waiting unless stop() comes first."""
        self._wake.clear()
        if not self.wanted:
            waiting.close()
            return
        task = asyncio.ensure_future(waiting)
        woken = asyncio.ensure_future(self._wake.wait())
        await asyncio.wait({task, woken}, return_when=asyncio.FIRST_COMPLETED)
        for each in (task, woken):
            each.cancel()
        await asyncio.gather(task, woken, return_exceptions=True)

    def _output(self, log: IO[str], line: str) -> None:
        """From the reader thread: the process's own log, the merged log, then the loop."""
        log.write(line + "\n")
        self.outputs.merged.write(self.name, line)
        self._loop.call_soon_threadsafe(self.on_output, line)

    def _event(self, event: str, detail: str = "", **fields: Any) -> None:
        self.outputs.events.record(self.name, event, detail, kind=self.kind.value, **fields)
        self.outputs.remark(f"{self.name} {event}{': ' + detail if detail else ''}")
