"""The servers under test as child processes, started alike and always stopped.

Both servers run as their own process, pinned to the server core, and are
found by the "listening on HOST:PORT" line they print, so both are measured
the same way. Every child is registered here, so that an error, Ctrl-C or
SIGTERM still stops it (SIGTERM, then SIGKILL), and an interpreter exit kills
whatever is left.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import re
import signal
import sys
from collections import deque
from collections.abc import Sequence
from pathlib import Path

from benchmarks import procfs

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

_alive: dict[int, asyncio.subprocess.Process] = {}
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
        self._process: asyncio.subprocess.Process | None = None
        self._lines: deque[str] = deque(maxlen=200)
        self._ready: asyncio.Future[str] | None = None
        self._reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None, "not started"
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    def tail(self, lines: int = 20) -> str:
        return "\n".join(list(self._lines)[-lines:])

    async def start(self) -> ServerProcess:
        loop = asyncio.get_running_loop()
        self._ready = loop.create_future()
        self._process = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=self.env,
            cwd=REPO,
        )
        _alive[self._process.pid] = self._process
        started.append({"kind": self.kind, "pid": self._process.pid})
        # Pinned before it starts its threads (they inherit it), then again below.
        procfs.pin(self._process.pid, self.core)
        self._reader = asyncio.create_task(self._read_output(), name=f"{self.kind}-output")
        try:
            self.address = await asyncio.wait_for(asyncio.shield(self._ready), READY_TIMEOUT_S)
        except BaseException:
            await self.stop()
            raise
        procfs.pin(self._process.pid, self.core)
        return self

    async def _read_output(self) -> None:
        """Keeps the pipe drained for the process's whole life (a full pipe would block it)."""
        assert self._process is not None and self._process.stdout is not None
        async for raw in self._process.stdout:
            line = raw.decode(errors="replace").rstrip()
            self._lines.append(line)
            match = LISTENING.search(line)
            if match and self._ready is not None and not self._ready.done():
                self._ready.set_result(match[1])
        code = await self._process.wait()
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(
                ServerExited(f"{self.kind} server exited with code {code} before serving:\n{self.tail()}")
            )

    async def stop(self) -> None:
        process = self._process
        if process is None:
            return
        await _terminate(process)
        _alive.pop(process.pid, None)
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, STOP_TIMEOUT_S)


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
    await asyncio.gather(*(_terminate(process) for process in _alive.values()))
    _alive.clear()


async def _terminate(process: asyncio.subprocess.Process) -> None:
    """SIGTERM, then SIGKILL after STOP_TIMEOUT_S."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


@atexit.register
def _kill_leftovers() -> None:
    """Last resort when the event loop is gone: no child outlives the benchmark."""
    for process in list(_alive.values()):
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
