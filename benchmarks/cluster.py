"""A cluster from one file: time to all running, and the pause a member sees while replicas restart.

    python -m benchmarks.cluster [--runs 3] [--rate 20]

Each run brings up a cluster with `chatctl cluster up` (embedded PostgreSQL,
group team of alice, bob and chad, a console client for bob) and times it
until every process runs. Then alice sends --rate notes a second while chad,
a member reading through the client library over every replica, records when
each note arrives; the replicas are replaced (`cluster rollout restart` with
two, `cluster restart server-1` with one, the reference in the same run) and
the figure is the longest time chad waited between two notes, against the
time between sends. `cluster down --volumes` ends each run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from clients import ChatClient

CLUSTER_TIMEOUT_S = 180.0
SETTLE_S = 2.0
"""Sending goes on this long before and after the restart, so the pause is measured in steady state."""


@dataclass(frozen=True, slots=True)
class Run:
    replicas: int
    up_s: float
    longest_pause_s: float
    notes: int


def cluster_file(directory: Path, replicas: int, port: int) -> Path:
    file = directory / "chatroom.toml"
    file.write_text(
        f'name = "bench"\n[server]\nreplicas = {replicas}\nport = {port}\n'
        '[[group]]\nname = "team"\nmembers = ["alice", "bob", "chad"]\n'
        '[[client]]\nmember = "bob"\ngroup = "team"\n'
    )
    return file


def chatctl(env: dict[str, str], *args: str) -> str:
    completed = subprocess.run(
        [sys.executable, "-m", "admin_cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=CLUSTER_TIMEOUT_S,
        check=False,
    )
    if completed.returncode != 0:
        raise SystemExit(f"chatctl {' '.join(args)} failed: {completed.stderr.strip()}")
    return completed.stdout


async def longest_pause(env: dict[str, str], replace: list[str], rate: float) -> tuple[float, int]:
    """Sends at `rate` while the replicas are replaced; the longest wait between two arrivals."""
    connection = json.loads(chatctl(env, "cluster", "env", "--json"))
    servers, tokens = connection["CHATROOM_SERVER"], Path(connection["CHATROOM_HOME"]) / "tokens"
    arrivals: list[float] = []
    sending = asyncio.Event()
    sending.set()

    async def read() -> None:
        async with ChatClient(servers, (tokens / "chad.token").read_text().strip()) as chad:
            async for _ in chad.notes("team"):
                arrivals.append(time.monotonic())

    async def send() -> None:
        async with ChatClient(servers, (tokens / "alice.token").read_text().strip()) as alice:
            while sending.is_set():
                await alice.send("team", "tick")
                await asyncio.sleep(1 / rate)

    reader, sender = asyncio.create_task(read()), asyncio.create_task(send())
    await asyncio.sleep(SETTLE_S)
    started = time.monotonic()
    await asyncio.to_thread(chatctl, env, "cluster", *replace)
    await asyncio.sleep(SETTLE_S)
    sending.clear()
    await sender
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)
    during = [t for t in arrivals if t >= started - 1 / rate]
    pauses = [later - earlier for earlier, later in zip(during, during[1:], strict=False)]
    return max(pauses, default=float("inf")), len(arrivals)


def run_once(replicas: int, rate: float, port: int) -> Run:
    with tempfile.TemporaryDirectory(prefix="chatroom-bench-cluster-") as directory:
        file = cluster_file(Path(directory), replicas, port)
        env = {**os.environ, "CHATROOM_HOME": str(Path(directory) / "home"), "CHATROOM_CLUSTER": str(file)}
        started = time.monotonic()
        chatctl(env, "cluster", "up")
        up_s = time.monotonic() - started
        try:
            replace = ["rollout", "restart"] if replicas > 1 else ["restart", "server-1"]
            pause, notes = asyncio.run(longest_pause(env, replace, rate))
        finally:
            chatctl(env, "cluster", "down", "--volumes")
        return Run(replicas, up_s, pause, notes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cluster", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each setup; medians are reported")
    parser.add_argument("--rate", type=float, default=20.0, help="notes a second alice sends")
    parser.add_argument("--port", type=int, default=52061, help="first replica's port")
    args = parser.parse_args(argv)
    runs: dict[int, list[Run]] = {2: [], 1: []}
    for index in range(args.runs):
        for replicas in sorted(runs, reverse=index % 2 == 1):  # alternate which setup goes first
            run = run_once(replicas, args.rate, args.port)
            runs[replicas].append(run)
            print(
                f"run {index + 1}, {replicas} replica(s): up in {run.up_s:.2f} s,"
                f" longest pause {run.longest_pause_s:.2f} s over {run.notes} notes",
                flush=True,
            )
    up = {n: statistics.median(r.up_s for r in rs) for n, rs in runs.items()}
    pause = {n: statistics.median(r.longest_pause_s for r in rs) for n, rs in runs.items()}
    print(f"\nmedians of {args.runs} runs, notes every {1000 / args.rate:.0f} ms:")
    print("| figure | 2 replicas | 1 replica | ratio |")
    print("| --- | --- | --- | --- |")
    print(f"| cluster up to all running | {up[2]:.2f} s | {up[1]:.2f} s | {up[2] / up[1]:.2f} |")
    print(
        f"| longest pause a member saw while the replicas were replaced | {pause[2]:.2f} s"
        f" | {pause[1]:.2f} s | {pause[2] / pause[1]:.2f} |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
