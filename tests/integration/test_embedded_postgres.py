"""Starting the embedded PostgreSQL from a process whose own gRPC calls are in flight.

The cluster supervisor restarts storage while it serves its control plane,
and tests restart PostgreSQL under a running server: as root, a process
started by fork() from such a process could crash in gRPC's fork handlers
before it ever became PostgreSQL.
"""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

from admin_cli.postgres import EmbeddedPostgres
from tests.support import TIMEOUT_S, ServerProcess, Stream, send

LAUNCHES = 100
SENDERS = 3


def test_postgres_programs_start_while_grpc_calls_are_in_flight(tmp_path: Path) -> None:
    postgres = EmbeddedPostgres(tmp_path / "postgres")
    server = ServerProcess(tmp_path / "home").start()
    stop = threading.Event()
    try:
        with server.channel() as channel:
            tokens = server.admin(channel).create_group("team", ["alice", "bob"])
            bob = Stream(channel, tokens["bob"], "team").subscribed()

            def keep_sending() -> None:
                while not stop.is_set():
                    send(channel, tokens["alice"], "team", "busy")

            senders = [threading.Thread(target=keep_sending) for _ in range(SENDERS)]
            for sender in senders:
                sender.start()
            try:
                for launch in range(LAUNCHES):
                    completed = subprocess.run(
                        postgres.argv("postgres", "--version"),
                        capture_output=True,
                        text=True,
                        timeout=TIMEOUT_S,
                        check=False,
                    )
                    assert "(PostgreSQL)" in completed.stdout, (launch, completed)
            finally:
                stop.set()
                for sender in senders:
                    sender.join(TIMEOUT_S)
            bob.close()
    finally:
        server.stop()
