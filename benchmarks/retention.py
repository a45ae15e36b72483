"""What the hard retention limit costs and saves: the same load with and without it.

    python -m benchmarks.retention [--notes N] [--limit N] [--concurrency N]

Sends N notes (default 200,000) into one group of a fresh chatroom server on
SQLite, first with retention off, then with `--retention-max-notes LIMIT`
(default 10,000), a member that never reads holding every note unread. Prints
SendNote/s and the database's size on disk (the file plus its -wal) once
retention has caught up, for each, and the ratios retention/off. Both runs
share the machine's noise; the ratios are what to compare between commits.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import grpc

from benchmarks import servers
from benchmarks.load import Connections, Sender, send_count
from benchmarks.targets import ADMIN_TIMEOUT_S, ChatroomTarget, bearer
from chatroom.v1 import admin_pb2, admin_pb2_grpc

GROUP = "bench"
SENDERS = 4
CATCH_UP_TIMEOUT_S = 120.0


@dataclass(frozen=True, slots=True)
class Run:
    label: str
    notes_per_s: float
    db_bytes: int
    wal_bytes: int
    kept: int
    errors: dict[str, int]

    @property
    def total_bytes(self) -> int:
        return self.db_bytes + self.wal_bytes


async def measure(label: str, notes: int, limit: int | None, concurrency: int) -> Run:
    """One fresh server, `notes` sent by SENDERS members into a group a reader never reads."""
    home = tempfile.TemporaryDirectory(prefix="chatroom-bench-retention-")
    db = Path(home.name) / "chatroom.db"
    server = servers.chatroom_server(Path(home.name), core=None)
    if limit is not None:
        server.env["CHATROOM_RETENTION_MAX_NOTES"] = str(limit)
    try:
        await server.start()
    except BaseException:
        home.cleanup()
        raise
    target = ChatroomTarget(server, home)
    connections = Connections(server.address, per_connection=1)
    errors: Counter[str] = Counter()
    try:
        writers = [f"w{i}" for i in range(SENDERS)]
        metadata = await target.create_group(GROUP, [*writers, "reader"])
        senders = [Sender(connections.stub(), metadata[w]) for w in writers]
        seconds = await send_count(senders, GROUP, notes, concurrency, errors)
        kept = await _kept_once_caught_up(connections.channel(), limit)
        return Run(
            label, notes / seconds, _size(db), _size(db.with_name(db.name + "-wal")), kept, dict(errors)
        )
    finally:
        await connections.close()
        await target.close()


async def _kept_once_caught_up(channel: grpc.aio.Channel, limit: int | None) -> int:
    """Notes the group keeps, after waiting for retention (it runs once a second) to reach
    the limit: the size measured is the steady state, not a pass half done."""
    admin = admin_pb2_grpc.AdminServiceStub(channel)
    request = admin_pb2.GetGroupRequest(group=GROUP)
    deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
    while True:
        response = await admin.GetGroup(
            request, metadata=bearer(servers.ADMIN_TOKEN), timeout=ADMIN_TIMEOUT_S
        )
        group = response.group
        kept = int(group.head_seq - group.first_seq + 1)
        if limit is None or kept <= limit or time.monotonic() > deadline:
            return kept
        await asyncio.sleep(0.2)


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _mb(size: int) -> str:
    return f"{size / 1e6:,.1f} MB"


def report(runs: list[Run], notes: int) -> None:
    print(f"\n{notes:,} notes into one group, SQLite, a member that never reads:")
    print(f"{'':28} {'SendNote/s':>11} {'db':>11} {'-wal':>11} {'db + -wal':>11} {'kept':>9}")
    for run in runs:
        print(
            f"{run.label:28} {run.notes_per_s:>11,.0f} {_mb(run.db_bytes):>11} {_mb(run.wal_bytes):>11}"
            f" {_mb(run.total_bytes):>11} {run.kept:>9,}"
        )
        if run.errors:
            print(f"  refused or failed sends: {run.errors}")
    off, bounded = runs
    print(f"ratio retention/off: SendNote/s {bounded.notes_per_s / off.notes_per_s:.2f},", end=" ")
    print(f"size on disk {bounded.total_bytes / off.total_bytes:.2f}")


async def run(notes: int, limit: int, concurrency: int) -> list[Run]:
    try:
        return [
            await measure("retention off", notes, None, concurrency),
            await measure(f"--retention-max-notes {limit:,}", notes, limit, concurrency),
        ]
    finally:
        await servers.stop_all()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.retention", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--notes", type=int, default=200_000, help="notes sent in each run")
    parser.add_argument("--limit", type=int, default=10_000, help="--retention-max-notes of the second run")
    parser.add_argument("--concurrency", type=int, default=64, help="SendNote calls in flight")
    args = parser.parse_args(argv)
    report(asyncio.run(run(args.notes, args.limit, args.concurrency)), args.notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
