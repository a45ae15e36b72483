"""The running formation of one cluster: its storage, replicas and clients, started and stopped in order.

Start-up is gated on health: servers start once storage answers, clients
once a replica is SERVING and the file's groups and member tokens exist.
Stopping goes the other way: clients first (nothing left to deliver to),
then every server drains (SIGTERM: health NOT_SERVING, streams end, acks
flushed), then storage. `scale` changes the counts without touching the
rest; a rollout replaces one replica at a time and never the last SERVING.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from admin_cli.cluster.config import MAX_PORT, MAX_REPLICAS, MAX_SESSIONS, ClusterConfig, option_flags
from admin_cli.cluster.delivery import ClusterAdmin
from admin_cli.cluster.home import ClusterHome
from admin_cli.cluster.kinds import ClientSession, ServerReplica, StorageProcess
from admin_cli.cluster.logs import matches
from admin_cli.cluster.supervised import Outputs, State, Supervised
from admin_cli.postgres import EmbeddedPostgres
from clients.lines import last_shown
from services.state_dir import ensure_admin_token

SETUP_RETRY_S = 0.5
CATCH_UP_POLL_S = 0.3
ROLLOUT_STEP_TIMEOUT_S = 60.0
STORAGE_URL_TIMEOUT_S = 30.0


class Refused(Exception):
    """A request the formation cannot carry out as asked; the message says why and what to do."""


@dataclass
class RolloutStep:
    name: str
    seconds: float
    notes_resent: int
    resubscribed: list[str] = field(default_factory=list)


class Formation:
    def __init__(self, config: ClusterConfig, home: ClusterHome, outputs: Outputs) -> None:
        self.config = config
        self.home = home
        self.outputs = outputs
        self.storage_ready = asyncio.Event()
        self.groups_ready = asyncio.Event()
        self.admin_token = ensure_admin_token(home.root)
        self.admin = ClusterAdmin(self.admin_token, self._admin_addresses)
        self.storage: StorageProcess | None = None
        self.servers: dict[int, ServerReplica] = {}
        self.clients: dict[str, ClientSession] = {}
        self._catching_up: dict[str, ClientSession] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._db = ""
        self._down = asyncio.Lock()
        self._spread = 0

    # -- what processes ask of it (kinds.Formation) ---------------------------

    def db(self) -> str:
        if self.storage is not None:  # its port may move between runs (postgres.py)
            return self.storage.postgres.url()
        return self._db

    def server_addresses(self) -> list[str]:
        return [server.address for _, server in sorted(self.servers.items())]

    def serving_addresses(self) -> list[str]:
        return [server.address for _, server in sorted(self.servers.items()) if server.serving]

    def _admin_addresses(self) -> list[str]:
        serving = self.serving_addresses()
        return serving + [address for address in self.server_addresses() if address not in serving]

    def subscribed(self, client: ClientSession) -> None:
        self.outputs.events.record(
            client.name,
            "subscribed",
            f"to {client.group} on {client.subscribed_to}",
            type="delivery",
            kind="client",
            member=client.member,
            group=client.group,
            server=client.subscribed_to,
        )
        self._catching_up[client.name] = client

    # -- the whole formation ------------------------------------------------

    @property
    def processes(self) -> list[Supervised]:
        ordered: list[Supervised] = [self.storage] if self.storage is not None else []
        return [*ordered, *(server for _, server in sorted(self.servers.items())), *self.clients.values()]

    def find(self, name: str) -> Supervised | None:
        return next((process for process in self.processes if process.name == name), None)

    async def up(self) -> None:
        storage = self.config.storage
        if storage.embedded:
            postgres = EmbeddedPostgres(self.home.postgres)
            await asyncio.to_thread(postgres.init)
            self.storage = StorageProcess(postgres, self.outputs, self)
            self.storage.start()
        elif storage.url is not None:
            self._db = storage.url
            self._tasks.append(asyncio.create_task(self._await_storage_url(storage.url)))
        else:
            self._db = str(self.home.sqlite)
            self.storage_ready.set()
        self._scale_servers(self.config.server.replicas)
        self._tasks.append(asyncio.create_task(self._set_up_groups(), name="set-up-groups"))
        self._tasks.append(asyncio.create_task(self._watch_catch_up(), name="watch-catch-up"))
        for client in self.config.clients:
            self._scale_client(client.member, client.sessions)

    async def down(self) -> list[str]:
        """Clients, then servers (each drains), then storage; how each ended."""
        async with self._down:
            return await self._stop_all()

    async def _stop_all(self) -> list[str]:
        outcomes: list[str] = []
        for group in (list(self.clients.values()), list(self.servers.values())):
            results = await asyncio.gather(*(process.stop() for process in group))
            outcomes += [f"{process.name}: {result}" for process, result in zip(group, results, strict=True)]
        if self.storage is not None:
            outcomes.append(f"storage: {await self.storage.stop()}")
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.admin.close()
        return outcomes

    async def _await_storage_url(self, url: str) -> None:
        import asyncpg

        deadline = time.monotonic() + STORAGE_URL_TIMEOUT_S
        while True:
            try:
                connection = await asyncpg.connect(url, timeout=2)
                await connection.close()
                self.storage_ready.set()
                return
            except (OSError, asyncpg.PostgresError) as error:
                if time.monotonic() > deadline:
                    self.outputs.remark(f"storage at the file's url does not answer: {error}")
                    deadline = time.monotonic() + STORAGE_URL_TIMEOUT_S
                await asyncio.sleep(SETUP_RETRY_S)

    async def _set_up_groups(self) -> None:
        while True:
            if self.serving_addresses():
                try:
                    saved = await self.admin.ensure_groups(self.config.groups)
                except Exception as error:  # noqa: BLE001 (any failure: say it and try again)
                    self.outputs.remark(f"cannot set up the groups yet: {error}")
                else:
                    if saved:
                        self.outputs.remark(
                            f"saved tokens for {', '.join(saved)} in {self.home.root / 'tokens'}"
                        )
                    self.groups_ready.set()
                    return
            await asyncio.sleep(SETUP_RETRY_S)

    async def _watch_catch_up(self) -> None:
        """Tells, for each client that subscribed, when its member has nothing unread any more."""
        while True:
            await asyncio.sleep(CATCH_UP_POLL_S)
            for group in {client.group for client in self._catching_up.values()}:
                try:
                    delivery = await self.admin.unread(group)
                except Exception:  # noqa: BLE001 (no replica answers now: ask again later)
                    continue
                unread = {member.member: member.unread_count for member in delivery.members}
                for name, client in list(self._catching_up.items()):
                    if client.group == group and unread.get(client.member) == 0:
                        del self._catching_up[name]
                        self.outputs.events.record(
                            name,
                            "caught up",
                            f"to head #{delivery.head_seq} of {group}",
                            type="delivery",
                            kind="client",
                            member=client.member,
                            group=group,
                            head_seq=delivery.head_seq,
                        )

    # -- changes ------------------------------------------------------------

    async def scale(self, counts: dict[str, int]) -> None:
        for name, count in counts.items():
            if name == "server":
                if self.config.storage.sqlite and count > 1:
                    raise Refused("SQLite storage serves one replica: use PostgreSQL to scale servers")
                if count > MAX_REPLICAS or self.config.server.port + count - 1 > MAX_PORT:
                    raise Refused(f"at most {MAX_REPLICAS} replicas, listening at most on port {MAX_PORT}")
            elif self.config.client(name) is None:
                raise Refused(f"{self.config.path} has no [[client]] member {name!r} (nor is it 'server')")
            elif count > MAX_SESSIONS:
                raise Refused(f"at most {MAX_SESSIONS} sessions of one member: each is a process")
        for name, count in counts.items():
            stopping = self._scale_servers(count) if name == "server" else self._scale_client(name, count)
            await asyncio.gather(*(process.stop() for process in reversed(stopping)))

    def _scale_servers(self, replicas: int) -> list[Supervised]:
        settings = self.config.server
        for replica in range(1, replicas + 1):
            if replica not in self.servers:
                name = f"server-{replica}"
                self.servers[replica] = ServerReplica(
                    replica,
                    settings.address(replica),
                    self.home.server_home(name),
                    option_flags(settings),
                    settings.restart,
                    self.outputs,
                    self,
                )
                self.servers[replica].start()
        return [self.servers.pop(replica) for replica in sorted(self.servers) if replica > replicas]

    def _scale_client(self, member: str, sessions: int) -> list[Supervised]:
        client = self.config.client(member)
        assert client is not None
        wanted = client.process_names(sessions)
        alone = len(wanted) == 1 and not any(each.member == member for each in self.clients.values())
        for name in wanted:
            if name not in self.clients:
                log = self.home.log(name, "client")
                self.clients[name] = ClientSession(name, client, log, self.outputs, self, self._spread, alone)
                self.clients[name].start()
                self._spread += 1
        kept = set(wanted)
        surplus = [name for name, each in self.clients.items() if each.member == member and name not in kept]
        return [self.clients.pop(name) for name in surplus]

    def resolve(self, names: Sequence[str]) -> list[Supervised]:
        """Processes by name, or all of a name ("server", "alice" for alice and alice-2)."""
        found: list[Supervised] = []
        for name in names:
            named = [process for process in self.processes if matches(process.name, [name])]
            if not named:
                raise Refused(f"no process named {name!r}: see 'chatctl cluster ps'")
            found += [process for process in named if process not in found]
        return found

    async def restart(self, names: Sequence[str]) -> list[Supervised]:
        processes = self.resolve(names)
        for process in processes:
            await process.restart()
        return processes

    def kill(self, name: str, signum: int) -> int:
        process = self.find(name)
        if process is None:
            raise Refused(f"no process named {name!r}: see 'chatctl cluster ps'")
        pid = process.kill(signum or signal.SIGKILL)
        if not pid:
            raise Refused(f"{name} is not running ({process.state.value})")
        return pid

    async def rollout(self) -> AsyncIterator[RolloutStep]:
        """Replaces each replica in turn: drain it, start it again, wait for it and its clients."""
        if len(self.serving_addresses()) < 2:
            raise Refused(
                "a rollout restart would leave no replica SERVING: it needs two SERVING"
                " (chatctl cluster scale server=2)"
            )
        for replica in sorted(self.servers):
            server = self.servers.get(replica)
            if server is None:
                continue
            if not [other for other in self.servers.values() if other is not server and other.serving]:
                raise Refused(f"no other replica is SERVING: {server.name} is left as it is")
            yield await self._replace(server)

    async def _replace(self, server: ServerReplica) -> RolloutStep:
        started = time.monotonic()
        on_it = [c for c in self.clients.values() if c.subscribed_to == server.address]
        subscriptions = {client.name: client.subscriptions for client in on_it}
        await server.stop()
        resent = await self._unacked(on_it)
        server.restarts.restarting()
        server.start()
        deadline = started + ROLLOUT_STEP_TIMEOUT_S
        while not (
            server.serving and all(c.subscriptions > subscriptions[c.name] or not c.wanted for c in on_it)
        ):
            if time.monotonic() > deadline or server.state in (State.FAILED, State.EXITED):
                raise Refused(
                    f"{server.name} or its clients did not come back within {ROLLOUT_STEP_TIMEOUT_S:.0f} s"
                )
            await asyncio.sleep(0.05)
        return RolloutStep(server.name, time.monotonic() - started, resent, [c.name for c in on_it])

    async def _unacked(self, clients: list[ClientSession]) -> int:
        """Notes these clients showed but whose acks had not reached storage: the servers send them again."""
        resent = 0
        for group in {client.group for client in clients}:
            delivery = await self.admin.unread(group)
            cursors = {member.member: member.last_acked_seq for member in delivery.members}
            for client in clients:
                if client.group == group:
                    shown = await asyncio.to_thread(last_shown, client.log, group)
                    resent += max(0, shown - cursors.get(client.member, 0))
        return resent
