"""python -m admin_cli.cluster.daemon FILE [--attach]: the supervisor of one cluster.

`chatctl cluster up` starts it in a session of its own (so closing the
terminal does not end it) with its output in supervisor.log; `up --attach`
runs it in the foreground instead, echoing the merged log, and Ctrl-C stops
the cluster in order. A lock in the state directory keeps one supervisor per
cluster; its control plane (control.py) listens on supervisor.sock beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from admin_cli.cluster.config import ClusterConfig, ConfigError, load
from admin_cli.cluster.control import SERVICE_NAME, ClusterServicer
from admin_cli.cluster.events import EventLog
from admin_cli.cluster.formation import Formation
from admin_cli.cluster.home import ClusterHome
from admin_cli.cluster.logs import MergedLog
from admin_cli.cluster.supervised import SUPERVISOR, Outputs
from chatroom.cluster.v1 import cluster_pb2_grpc
from services.reflection import DocumentedReflection

ALREADY_RUNNING = 3


class AlreadyRunning(Exception):
    pass


@contextmanager
def supervisor_lock(home: ClusterHome) -> Iterator[None]:
    """Held while this supervisor runs; a second one for the cluster fails to take it."""
    home.root.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(home.lock, "a+") as file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read().strip() or "unknown"
            raise AlreadyRunning(f"its supervisor runs already (pid {holder})") from None
        file.seek(0)
        file.truncate()
        file.write(f"{os.getpid()}\n")
        file.flush()
        try:
            yield
        finally:
            file.truncate(0)


async def supervise(config: ClusterConfig, attach: bool) -> int:
    home = ClusterHome.of(config.name)
    with supervisor_lock(home):
        os.environ["CHATROOM_HOME"] = str(home.root)  # chatctl's helpers find tokens and logs there
        merged = MergedLog(home.merged_log, echo=sys.stdout if attach else None)
        outputs = Outputs(merged, EventLog(home.events))
        try:
            return await _serve(config, home, outputs)
        finally:
            merged.close()


async def _serve(config: ClusterConfig, home: ClusterHome, outputs: Outputs) -> int:
    formation = Formation(config, home, outputs)
    finished = asyncio.Event()
    server = grpc.aio.server()
    cluster_pb2_grpc.add_ClusterServiceServicer_to_server(ClusterServicer(formation, finished.set), server)
    names = (SERVICE_NAME, reflection.SERVICE_NAME)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(DocumentedReflection(names), server)
    home.socket.unlink(missing_ok=True)
    server.add_insecure_port(home.socket_address)
    await server.start()
    home.socket.chmod(0o600)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, finished.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: None)  # a closed terminal does not end the cluster
    outputs.events.record(SUPERVISOR, "up", f"{config.name} from {config.path}", pid=os.getpid())
    outputs.remark(f"supervising {config.name} from {config.path} (pid {os.getpid()}, state in {home.root})")
    try:
        await formation.up()
    except (OSError, RuntimeError) as error:
        print(f"error: cannot start {config.name}: {error}", file=sys.stderr, flush=True)
        await formation.down()
        await server.stop(0)
        return 1
    await finished.wait()
    outputs.remark("stopping: clients, then servers, then storage")
    for outcome in await formation.down():
        outputs.remark(outcome)
    outputs.events.record(SUPERVISOR, "down", config.name, pid=os.getpid())
    await server.stop(1.0)
    home.socket.unlink(missing_ok=True)
    return 0


def run(path: Path, attach: bool) -> int:
    try:
        config = load(path)
        return asyncio.run(supervise(config, attach))
    except (ConfigError, AlreadyRunning) as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return ALREADY_RUNNING if isinstance(error, AlreadyRunning) else 2


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m admin_cli.cluster.daemon", description=__doc__)
    parser.add_argument("file", type=Path)
    parser.add_argument("--attach", action="store_true", help="echo the merged log to stdout")
    args = parser.parse_args()
    os.chdir("/")  # holds on to no directory of the terminal's
    return run(args.file.resolve(), args.attach)


if __name__ == "__main__":
    sys.exit(main())
