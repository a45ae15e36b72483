"""python -m admin_cli.supervisor RECORD -- COMMAND...: keeps a client process running.

Started by `chatctl client start --restart on-failure`. Runs COMMAND, and when
it exits with a failure (non-zero code or a signal such as kill -9) starts it
again after a growing delay (admin_cli/restarts.py, the policy `chatctl
cluster` follows too), keeping RECORD up to date with the current pid so that
`chatctl client list` shows the process that really runs. A clean exit (code
0), or too many fast failures, ends supervision; SIGTERM is passed on to the
child and ends it too.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from admin_cli.processes import ProcessId, ProcessRecord
from admin_cli.restarts import Restarts, describe_exit


async def supervise(record_path: Path, command: list[str]) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    restarts = Restarts("on-failure")
    while True:
        child = await asyncio.create_subprocess_exec(*command)
        _update_record(record_path, child.pid, restarts.count)
        restarts.started()
        waiter = asyncio.create_task(child.wait())
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if stop.is_set() and not waiter.done():
            child.terminate()
            await waiter
            return 0
        code = waiter.result()
        if stop.is_set():
            return 0
        verdict = restarts.after_exit(code)
        if verdict.restart_in_s is None:
            if verdict.gave_up:
                print(f"* client exited ({describe_exit(code)}) too often; giving up", flush=True)
            return 0 if code == 0 else 1
        print(
            f"* client exited ({describe_exit(code)}); restarting in {verdict.restart_in_s:.1f} s", flush=True
        )
        try:
            await asyncio.wait_for(stop.wait(), verdict.restart_in_s)
            return 0
        except TimeoutError:
            restarts.restarting()


def _update_record(path: Path, pid: int, restarts: int) -> None:
    record = ProcessRecord.load(path)
    if record is None:
        return
    child, me = ProcessId.of(pid), ProcessId.of(os.getpid())
    record.pid, record.created = pid, child.created if child else 0.0
    record.details["restarts"] = restarts
    record.details["supervisor"] = {"pid": os.getpid(), "created": me.created if me else 0.0}
    record.save(path)


def main() -> int:
    args = sys.argv[1:]
    if len(args) < 3 or args[1] != "--":
        sys.exit("usage: python -m admin_cli.supervisor RECORD -- COMMAND...")
    return asyncio.run(supervise(Path(args[0]), args[2:]))


if __name__ == "__main__":
    sys.exit(main())
