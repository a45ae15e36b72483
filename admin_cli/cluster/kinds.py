"""The three kinds of process in a cluster: how each is launched, what it waits for, when it is ready.

- storage: the embedded PostgreSQL (`postgres` in the foreground on the
  cluster's data directory), ready when it accepts connections.
- server: `chatctl server start` on 127.0.0.1:(port + i - 1) with a state
  directory of its own and the cluster's storage and admin token; it starts
  once storage is ready and is running once its gRPC health says SERVING.
- client: the console of client_cmd.py (`--resume-log`, so that a restart
  does not show a note twice) pointed at every replica; it starts once a
  replica is SERVING and the groups exist, and is running once it printed
  that it subscribed.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path
from typing import Protocol

from admin_cli.client_cmd import client_command
from admin_cli.cluster.config import Client
from admin_cli.cluster.delivery import ClusterAdmin
from admin_cli.cluster.supervised import Kind, Launch, Outputs, State, Supervised
from admin_cli.cluster.verify import record_first_cursor
from admin_cli.postgres import READY_LINE, EmbeddedPostgres
from admin_cli.restarts import RestartPolicy
from clients.lines import SUBSCRIBED_PREFIX

HEALTH_POLL_S = 0.2
HEALTH_WATCH_S = 1.0
GATE_POLL_S = 0.1
SUBSCRIBED_ON = re.compile(re.escape(SUBSCRIBED_PREFIX) + r"\S+ on (?P<server>\S+) as ")
POSTGRES_STOP_GRACE_S = 30.0
CLIENT_STOP_GRACE_S = 10.0


class Formation(Protocol):
    """What a process needs of its cluster."""

    storage_ready: asyncio.Event
    groups_ready: asyncio.Event
    admin: ClusterAdmin
    admin_token: str

    def db(self) -> str: ...

    def server_addresses(self) -> list[str]: ...

    def serving_addresses(self) -> list[str]: ...

    def subscribed(self, client: ClientSession) -> None: ...


def base_environment() -> dict[str, str]:
    """This environment without CHATROOM_ variables: the cluster sets those it means."""
    return {key: value for key, value in os.environ.items() if not key.startswith("CHATROOM_")}


class StorageProcess(Supervised):
    kind = Kind.STORAGE

    def __init__(self, postgres: EmbeddedPostgres, outputs: Outputs, formation: Formation) -> None:
        super().__init__("storage", postgres.home / "postgres.log", "on-failure", outputs)
        self.postgres = postgres
        self.formation = formation
        self._accepting = asyncio.Event()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.postgres.port}"

    def launch(self) -> Launch:
        self.postgres.ensure_port_free()
        self._accepting.clear()
        self.formation.storage_ready.clear()
        return Launch(
            self.postgres.command(),
            base_environment(),
            stop_signal=self.postgres.stop_signal,
            stop_grace_s=POSTGRES_STOP_GRACE_S,
        )

    def on_output(self, line: str) -> None:
        if READY_LINE in line:
            self._accepting.set()

    async def become_ready(self) -> None:
        await self._accepting.wait()
        self.formation.storage_ready.set()

    def ready_detail(self) -> str:
        return f"accepting connections on {self.address}"


class ServerReplica(Supervised):
    kind = Kind.SERVER

    def __init__(
        self,
        replica: int,
        address: str,
        home: Path,
        options: list[str],
        policy: RestartPolicy,
        outputs: Outputs,
        formation: Formation,
    ) -> None:
        super().__init__(f"server-{replica}", home / "server.log", policy, outputs)
        self.replica = replica
        self.address = address
        self.home = home
        self.options = options
        self.formation = formation
        self.health = "UNREACHABLE"

    @property
    def serving(self) -> bool:
        return self.state is State.RUNNING and self.health == "SERVING"

    def launch(self) -> Launch:
        self.health = "UNREACHABLE"
        env = {
            **base_environment(),
            "CHATROOM_HOME": str(self.home),
            "CHATROOM_ADMIN_TOKEN": self.formation.admin_token,
            "CHATROOM_DB": self.formation.db(),  # not in argv: a URL may hold a password
            "CHATROOM_SERVER_LOG": str(self.log),
        }
        argv = [
            sys.executable,
            "-m",
            "admin_cli",
            "server",
            "start",
            f"--listen={self.address}",
            *self.options,
        ]
        return Launch(argv, env)

    async def gate(self) -> None:
        await self.formation.storage_ready.wait()

    async def become_ready(self) -> None:
        while (health := await self.formation.admin.health(self.address)) != "SERVING":
            self.health = health
            await asyncio.sleep(HEALTH_POLL_S)
        self.health = health

    async def while_running(self) -> None:
        """Keeps the health column current."""
        try:
            while True:
                await asyncio.sleep(HEALTH_WATCH_S)
                self.health = await self.formation.admin.health(self.address)
        finally:
            self.health = "UNREACHABLE"

    def ready_detail(self) -> str:
        return f"SERVING on {self.address}"


class ClientSession(Supervised):
    kind = Kind.CLIENT

    def __init__(
        self,
        name: str,
        client: Client,
        log: Path,
        outputs: Outputs,
        formation: Formation,
        spread: int,
        alone: bool,
    ) -> None:
        super().__init__(name, log, client.restart, outputs)
        self.spread = spread
        """Which replica it tries first: clients are spread over the replicas, each with all as fallbacks."""
        self.alone = alone
        """The member's only session: no other session's acks move the cursor before this one subscribes."""
        self.member = client.member
        self.group = client.group
        self.formation = formation
        self.subscribed_to = ""
        """The replica its stream is subscribed through; empty while it is not."""
        self.subscriptions = 0
        """Times it subscribed, across its runs."""
        self._subscribed = asyncio.Event()

    def launch(self) -> Launch:
        self._subscribed.clear()
        self.subscribed_to = ""
        addresses = self.formation.server_addresses()
        first = self.spread % len(addresses) if addresses else 0
        servers = ",".join(addresses[first:] + addresses[:first])
        argv = client_command(self.member, self.group, servers, self.log)
        return Launch(argv, base_environment(), stop_grace_s=CLIENT_STOP_GRACE_S)

    async def gate(self) -> None:
        await self.formation.groups_ready.wait()
        while not self.formation.serving_addresses():
            await asyncio.sleep(GATE_POLL_S)
        if self.alone:
            await self._record_first_cursor()

    async def _record_first_cursor(self) -> None:
        """Before the first start ever, the member's cursor heads the log, so that verify sees
        exactly where its notes begin (and a loss of the very first ones)."""
        if self.log.exists() and self.log.stat().st_size:
            return
        try:
            delivery = await self.formation.admin.unread(self.group)
        except Exception:  # noqa: BLE001 (no replica answers: verify starts from the first note shown)
            return
        cursors = {member.member: member.last_acked_seq for member in delivery.members}
        if self.member in cursors:
            await asyncio.to_thread(record_first_cursor, self.log, cursors[self.member])

    def on_output(self, line: str) -> None:
        if match := SUBSCRIBED_ON.match(line):
            self.subscribed_to = match["server"]
            self.subscriptions += 1
            self._subscribed.set()
            self.formation.subscribed(self)
        elif line.startswith("* connection lost"):
            self.subscribed_to = ""

    async def become_ready(self) -> None:
        await self._subscribed.wait()

    def ready_detail(self) -> str:
        return f"subscribed to {self.group} on {self.subscribed_to}"
