"""The servers under test as child processes, started alike and always stopped.

Both servers run as their own process, pinned to the server core, and are
found by the "listening on HOST:PORT" line they print, so both are measured
the same way. They are chatctl's own watched processes (admin_cli.processes);
every one is registered here, so that an error, Ctrl-C or SIGTERM still stops
it (SIGTERM, then SIGKILL), and an interpreter exit kills whatever is left.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from admin_cli.processes import Watched
from benchmarks import cores

REPO = Path(__file__).resolve().parent.parent
LISTENING = re.compile(r"listening on (\S+)")
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
ADMIN_TOKEN = "benchmark-admin-token"
CHATROOM_LIMITS = {
    # Policy limits lifted, capacity untouched: the generator's few senders send far
    # faster than a person may (20 notes/s by default), and N=1,000 readers plus the
    # senders exceed the default group size. Servers without these settings ignore them.
    "CHATROOM_NOTES_PER_SECOND": "1000000",
    "CHATROOM_NOTE_BURST": "1000000",
    "CHATROOM_MAX_GROUP_MEMBERS": "100000",
}

_alive: dict[int, Watched] = {}
started: list[dict[str, object]] = []
"""Every server started (kind, pid), for the results: a check that none outlived the run."""


class ServerExited(RuntimeError):
    pass


class ServerProcess:
    """One server child: its pid, the address it bound, the last lines it printed."""

    def __init__(self, kind: str, argv: Sequence[str], env: dict[str, str], core: int | None) -> None:
        self.kind = kind
        self.argv = list(argv)
        self.env = env
        self.core = core
        self.address = ""
        self._process: Watched | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None, "not started"
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.process.poll() is None

    def tail(self, lines: int = 20) -> str:
        return "" if self._process is None else "\n".join(self._process.lines[-lines:])

    async def start(self) -> ServerProcess:
        process = self._process = Watched(self.argv, self.env, cwd=REPO)
        _alive[process.pid] = process
        started.append({"kind": self.kind, "pid": process.pid})
        # Pinned before it starts its threads (they inherit it), then again below.
        cores.pin(process.pid, self.core)
        try:
            ready = await asyncio.to_thread(process.wait_for, LISTENING.pattern, READY_TIMEOUT_S)
            if ready is None:
                raise ServerExited(f"{self.kind} server did not start serving:\n{self.tail()}")
        except BaseException:
            await self.stop()
            raise
        self.address = ready[1]
        cores.pin(process.pid, self.core)
        return self

    async def stop(self) -> None:
        if self._process is not None:
            await asyncio.to_thread(self._process.stop, STOP_TIMEOUT_S)
            _alive.pop(self._process.pid, None)


def chatroom_server(home: Path, core: int | None, db: str | None = None) -> ServerProcess:
    """The real server, started as an operator would, in its own state directory
    (and on SQLite there, unless db names another database)."""
    argv = [
        sys.executable,
        "-m",
        "admin_cli",
        "server",
        "start",
        "--listen=127.0.0.1:0",
        f"--db={db or home / 'chatroom.db'}",
    ]
    env = _clean_env()
    env.update(CHATROOM_LIMITS, CHATROOM_HOME=str(home), CHATROOM_ADMIN_TOKEN=ADMIN_TOKEN)
    return ServerProcess("chatroom", argv, env, core)


def baseline_server(core: int | None) -> ServerProcess:
    argv = [sys.executable, "-m", "benchmarks.baseline_server", "--listen", "127.0.0.1:0"]
    return ServerProcess("baseline", argv, _clean_env(), core)


def _clean_env() -> dict[str, str]:
    """The caller's environment minus CHATROOM_* settings that would change what is measured."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CHATROOM_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    return env


async def stop_all() -> None:
    """Stops every child still running (the benchmark's finally clause), all at once."""
    await asyncio.gather(*(asyncio.to_thread(process.stop, STOP_TIMEOUT_S) for process in _alive.values()))
    _alive.clear()


@atexit.register
def _kill_leftovers() -> None:
    """Last resort when the event loop is gone: no child outlives the benchmark."""
    for process in list(_alive.values()):
        if process.process.poll() is None:
            process.process.kill()
