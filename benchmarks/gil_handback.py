"""How much a busy event loop slows chatroom's SQLite commits, which run on a storage thread.

    python -m benchmarks.gil_handback [--seconds S]

Python's sqlite3 releases the GIL around every statement, so a commit takes
the GIL back several times (BEGIN, the sender check, the insert, the head
update, COMMIT). While the loop runs Python, each take waits for the loop to
let go of the GIL. It lets go at its next blocking call, or after the switch
interval (5 ms by default). This script commits one note at a time through the
real SqliteStore, first with the loop idle, then with a task that keeps the
loop busy in slices of Python work (as fan-out to many sessions does), and
prints commits/s for both and their ratio. The process is pinned to one core,
as the benchmark pins the server; across two cores the hand-back is slower still.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import cores
from services.core.model import NewNote
from services.core.tokens import hash_token
from services.storage.sqlite import SqliteStore

SLICE_S = 0.0005
"""Python work between two awaits of the busy task: about what 10-20 session steps take."""
SHORT_SWITCH_S = 0.0005
"""The switch interval tried beside the default, to show that shortening it does not help."""
TOKEN_HASH = hash_token("benchmark-token")


async def commits_per_s(store: SqliteStore, seconds: float, busy: bool) -> float:
    stop = asyncio.Event()

    async def keep_busy() -> None:
        while not stop.is_set():
            until = time.perf_counter() + SLICE_S
            while time.perf_counter() < until:
                pass
            await asyncio.sleep(0)

    spinner = asyncio.create_task(keep_busy()) if busy else None
    commits = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        note = NewNote("bench", "alice", "x" * 100, time.time_ns() // 1000, "", TOKEN_HASH)
        await store.append_notes([note])
        commits += 1
    stop.set()
    if spinner is not None:
        await spinner
    return commits / seconds


async def main(seconds: float) -> None:
    with tempfile.TemporaryDirectory() as home:
        store = SqliteStore(Path(home) / "chatroom.db")
        await store.open()
        try:
            await store.create_group("bench", ["alice"], {"alice": TOKEN_HASH})
            for interval_s in (sys.getswitchinterval(), SHORT_SWITCH_S):
                sys.setswitchinterval(interval_s)
                idle = await commits_per_s(store, seconds, busy=False)
                busy = await commits_per_s(store, seconds, busy=True)
                print(
                    f"switch interval {interval_s * 1000:.1f} ms: loop idle {idle:,.0f} commits/s,"
                    f" loop busy {busy:,.0f} commits/s, ratio {busy / idle:.2f}"
                )
        finally:
            await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gil_handback", description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each measurement")
    args = parser.parse_args()
    cores.pin(os.getpid(), cores.plan_placement().server_core)
    asyncio.run(main(args.seconds))
