"""Deliveries per second: two chatroom replicas on PostgreSQL against one on SQLite.

    python -m benchmarks.replicas --postgres postgresql://USER:PASS@HOST:PORT/DB
        [--subscribers 100] [--senders 4] [--runs 3] [--seconds 5]

The same workload in the same run, alternating which setup goes first: one
group, N subscribers and S closed-loop senders (as in the main benchmark's
fan-out figure). With two replicas, half the subscribers and half the senders
are on each, so for half of its readers every note crosses replicas (NOTIFY,
then one read of the new notes on the other replica). --postgres names a
server on which the user may create databases; each run gets a fresh one.
Servers are pinned to one core and the generator to another, as in the main
benchmark, so the two replicas share one core here: the figure is the cost of
shared storage and cross-replica fan-out, not the gain of a second machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc

from benchmarks import cores, servers
from benchmarks.figures import CpuMeter
from benchmarks.load import (
    CALL_TIMEOUT_S,
    Connections,
    DeliveryRecorder,
    Opened,
    Sender,
    Tap,
    cancel_all,
    closed_loop_sender,
    open_subscribers,
    wake_senders,
)
from benchmarks.targets import Metadata, bearer
from chatroom.v1 import admin_pb2, admin_pb2_grpc

WINDOW = 20
WARMUP_S = 1.0
DRAIN_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Outcome:
    setup: str
    deliveries_per_s: float
    server_cpu_s_per_1000: float | None
    undelivered: int


@asynccontextmanager
async def fresh_database(url: str) -> AsyncIterator[str]:
    name = f"chatroom_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield urlunsplit(urlsplit(url)._replace(path=f"/{name}"))
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@asynccontextmanager
async def chatroom_servers(
    db: str | None, count: int, core: int | None
) -> AsyncIterator[list[servers.ServerProcess]]:
    """count servers on one database (None: SQLite in a state directory), pinned to core."""
    with tempfile.TemporaryDirectory(prefix="chatroom-replicas-") as home:
        started = []
        try:
            for index in range(count):
                replica_home = Path(home) / f"replica-{index}"
                server = servers.chatroom_server(replica_home, core, db=db)
                started.append(await server.start())
            yield started
        finally:
            for server in started:
                await server.stop()


async def create_group(address: str, group: str, members: Sequence[str]) -> dict[str, Metadata]:
    async with grpc.aio.insecure_channel(address) as channel:
        response = await admin_pb2_grpc.AdminServiceStub(channel).CreateGroup(
            admin_pb2.CreateGroupRequest(group=group, members=list(members)),
            metadata=bearer(servers.ADMIN_TOKEN),
            timeout=CALL_TIMEOUT_S,
        )
    return {c.member: bearer(c.token) for c in response.credentials}


async def measure(
    setup: str, replicas: list[servers.ServerProcess], subscribers: int, senders: int, seconds: float
) -> Outcome:
    """Splits readers and senders over the replicas round-robin; deliveries/s and CPU per 1,000."""
    addresses = [replica.address for replica in replicas]
    group = f"g{uuid.uuid4().hex[:8]}"
    readers = [f"{group}-r{i:05d}" for i in range(subscribers)]
    writers = [f"{group}-s{i}" for i in range(senders)]
    metadata = await create_group(addresses[0], group, readers + writers)
    tap = Tap()
    connections = [Connections(address) for address in addresses]
    sending = [Connections(address, per_connection=1) for address in addresses]
    opened: list[Opened] = []
    for index, address_connections in enumerate(connections):
        mine = [metadata[reader] for reader in readers[index :: len(addresses)]]
        opened.append(await open_subscribers(address_connections, group, mine, tap))
    receivers = sum(o.accepted for o in opened)
    sender_list = [Sender(sending[i % len(addresses)].stub(), metadata[w]) for i, w in enumerate(writers)]
    recorder = DeliveryRecorder(setup, receivers)
    tap.sink = recorder
    stop = asyncio.Event()
    errors: Counter[str] = Counter()
    tasks = [
        asyncio.create_task(closed_loop_sender(sender, i, group, recorder, WINDOW, stop, errors))
        for i, sender in enumerate(sender_list)
    ]
    try:
        await asyncio.sleep(WARMUP_S)
        meters = [CpuMeter(replica.pid) for replica in replicas]
        started = time.perf_counter()
        recorder.counting = True
        await asyncio.sleep(seconds)
        recorder.counting = False
        elapsed = time.perf_counter() - started
        server_cpu = sum(meter.stop()[0] for meter in meters)
        stop.set()
        wake_senders(recorder)
        await asyncio.wait_for(recorder.drained.wait(), DRAIN_TIMEOUT_S)
    finally:
        await cancel_all(tasks)
        tap.sink = None
        for streams in opened:
            await streams.close()
        for pool in [*connections, *sending]:
            await pool.close()
    deliveries = recorder.deliveries
    return Outcome(
        setup,
        deliveries / elapsed,
        1000 * server_cpu / deliveries if deliveries else None,
        recorder.undelivered(),
    )


async def run_once(setup: str, postgres: str, args: argparse.Namespace, core: int | None) -> Outcome:
    if setup == "sqlite":
        async with chatroom_servers(None, 1, core) as replicas:
            return await measure(setup, replicas, args.subscribers, args.senders, args.seconds)
    async with fresh_database(postgres) as db, chatroom_servers(db, 2, core) as replicas:
        return await measure(setup, replicas, args.subscribers, args.senders, args.seconds)


async def main_async(args: argparse.Namespace) -> int:
    placement = cores.plan_placement()
    cores.pin(os.getpid(), placement.generator_core)
    outcomes: dict[str, list[Outcome]] = {"sqlite": [], "postgres-2": []}
    try:
        for run in range(args.runs):
            order = ["sqlite", "postgres-2"] if run % 2 == 0 else ["postgres-2", "sqlite"]
            for setup in order:
                outcome = await run_once(setup, args.postgres, args, placement.server_core)
                outcomes[setup].append(outcome)
                print(f"run {run + 1} {setup}: {outcome.deliveries_per_s:,.0f} deliveries/s", file=sys.stderr)
    finally:
        await servers.stop_all()
    single = statistics.median(o.deliveries_per_s for o in outcomes["sqlite"])
    double = statistics.median(o.deliveries_per_s for o in outcomes["postgres-2"])
    print(f"N={args.subscribers}, {args.senders} senders, median of {args.runs} runs:")
    print(f"  1 replica on SQLite:       {single:10,.0f} deliveries/s")
    print(f"  2 replicas on PostgreSQL:  {double:10,.0f} deliveries/s  (ratio {double / single:.2f})")
    lost = sum(o.undelivered for runs in outcomes.values() for o in runs)
    if lost:
        print(f"  warning: {lost} deliveries still missing after the drain")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.replicas", description=__doc__)
    parser.add_argument("--postgres", default=os.environ.get("CHATROOM_TEST_POSTGRES"), help="server URL")
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    if not args.postgres:
        parser.error("--postgres (or CHATROOM_TEST_POSTGRES) is needed")
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
