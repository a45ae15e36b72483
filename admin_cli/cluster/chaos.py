"""chatctl cluster chaos: load through a running cluster while replicas and clients die, then verify.

Senders, as members of the file's groups, send over every replica (each
starting at a different one) for the whole duration. Meanwhile processes are
killed with SIGKILL at times drawn from the seed (`plan_kills`, pure, so a
seed names a run): a replica only while another one is SERVING, so never
all at once, and each kill of a process that is running now; the
supervisor's restart policy brings each back. Then, once every process runs
again and the cluster is quiet, verify checks every client (verify.py), and
every note a sender was told was stored must be in its group's history.

The pause after a kill is how long a client went without a new note line
after it: the log of each client is watched while the load runs.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from admin_cli.cluster import verify as checking
from admin_cli.cluster.config import ClusterConfig
from admin_cli.cluster.remote import Supervisor
from chatroom.cluster.v1 import cluster_pb2
from clients import Backoff, ChatClient
from clients.lines import NOTE_LINE
from clients.model import ChatError

KillKind = Literal["server", "client"]
FIRST_KILL_AT = 0.1
LAST_KILL_AT = 0.8
"""Kills fall in this part of the duration, so that the last ones are recovered from under load."""
SEND_INTERVAL_S = 0.1
"""Each sender's pace: a steady stream, so that a pause after a kill shows in every log."""
SEND_RETRY_S = 60.0
WATCH_INTERVAL_S = 0.05
STATUS_POLL_S = 0.2
KILL_WAIT_S = 60.0
"""How long a kill waits for a process it may kill (another replica SERVING, a client running)."""
BACK_TIMEOUT_S = 120.0


@dataclass(frozen=True, slots=True)
class Kill:
    at_s: float
    kind: KillKind
    pick: float
    """Which of the processes that may be killed then: the one at this fraction of them, in name order."""


def plan_kills(seed: int, duration_s: float, server_kills: int, client_kills: int) -> list[Kill]:
    """When to kill what, from the seed alone.

    Server kills get a slot each of the window, so that a killed replica has
    time to come back before the next; client kills fall anywhere in it."""
    chance = random.Random(seed)
    start, window = FIRST_KILL_AT * duration_s, (LAST_KILL_AT - FIRST_KILL_AT) * duration_s
    slot = window / max(server_kills, 1)
    kills = [
        Kill(start + slot * i + chance.uniform(0, slot), "server", chance.random())
        for i in range(server_kills)
    ]
    kills += [Kill(start + chance.uniform(0, window), "client", chance.random()) for _ in range(client_kills)]
    return sorted(kills, key=lambda kill: kill.at_s)


def choose(kill: Kill, candidates: Sequence[str], killed: dict[str, int]) -> str:
    """The victim among candidates: of those killed least so far (a restart policy gives up after
    several short runs in a row), the one at the kill's fraction."""
    fewest = min(killed.get(name, 0) for name in candidates)
    least = sorted(name for name in candidates if killed.get(name, 0) == fewest)
    return least[min(int(kill.pick * len(least)), len(least) - 1)]


@dataclass(frozen=True, slots=True)
class Sender:
    member: str
    group: str


def senders_of(config: ClusterConfig, count: int) -> list[Sender]:
    """count senders, taking each group's members in turn, so that every group gets load."""
    pairs: list[Sender] = []
    longest = max((len(group.members) for group in config.groups), default=0)
    for i in range(longest):
        pairs += [Sender(group.members[i], group.name) for group in config.groups if i < len(group.members)]
    return [pairs[i % len(pairs)] for i in range(count)] if pairs else []


@dataclass(frozen=True, slots=True)
class Killed:
    at_s: float
    name: str
    kind: KillKind
    pid: int


@dataclass
class ChaosResult:
    seed: int
    sent: int
    kills: list[Killed]
    restarts: int
    longest_pause_s: float
    longest_pause: str
    """Who waited, after which kill."""
    reports: list[checking.ClientReport]
    lost_sends: list[str] = field(default_factory=list)
    """Notes a sender was told were stored that the group's history lacks."""
    trouble: list[str] = field(default_factory=list)
    """What else went wrong: a kill that could not be made, sends that failed, a process not back."""

    @property
    def lost(self) -> int:
        return sum(len(report.missing) for report in self.reports) + len(self.lost_sends)

    @property
    def duplicated(self) -> int:
        return sum(len(report.duplicated) for report in self.reports)

    @property
    def ok(self) -> bool:
        return all(report.ok for report in self.reports) and not self.lost_sends and not self.trouble

    def problems(self) -> list[str]:
        found = [f"{r.name}: " + "; ".join(checking.problems(r)) for r in self.reports if not r.ok]
        return [*found, *self.lost_sends, *self.trouble]

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "sent": self.sent,
            "server_kills": sum(kill.kind == "server" for kill in self.kills),
            "client_kills": sum(kill.kind == "client" for kill in self.kills),
            "restarts": self.restarts,
            "longest_pause_s": round(self.longest_pause_s, 3),
            "lost": self.lost,
            "duplicated": self.duplicated,
            "seed": self.seed,
            "kills": [{"at_s": round(k.at_s, 3), "name": k.name, "kind": k.kind} for k in self.kills],
            "problems": self.problems(),
        }


class _Watcher:
    """When each client's log gained note lines: the arrivals that pauses are measured on."""

    def __init__(self, clients: Sequence[checking.ClientLog]) -> None:
        self.clients = clients
        self.arrivals: dict[str, list[float]] = {client.name: [] for client in clients}
        self._offsets = {client.name: _size(client) for client in clients}
        self._partial = {client.name: b"" for client in clients}

    def poll(self) -> None:
        now = time.monotonic()
        for client in self.clients:
            path = client.logs[-1]
            try:
                with open(path, "rb") as file:
                    file.seek(self._offsets[client.name])
                    chunk = file.read()
            except FileNotFoundError:
                continue
            self._offsets[client.name] += len(chunk)
            *lines, self._partial[client.name] = (self._partial[client.name] + chunk).split(b"\n")
            for line in lines:
                match = NOTE_LINE.match(line.decode(errors="replace"))
                if match and match["group"] == client.group:
                    self.arrivals[client.name].append(now)

    def longest_pause(self, kills: Sequence[tuple[float, str]]) -> tuple[float, str]:
        """The longest wait of a client for its next note after a kill (at monotonic times)."""
        longest, who = 0.0, ""
        for at, victim in kills:
            for name, arrivals in self.arrivals.items():
                after = next((moment for moment in arrivals if moment > at), None)
                if after is not None and after - at > longest:
                    longest, who = after - at, f"{name}, after {victim} was killed"
        return longest, who


def _size(client: checking.ClientLog) -> int:
    try:
        return client.logs[-1].stat().st_size
    except FileNotFoundError:
        return 0


def run(
    config: ClusterConfig,
    supervisor: Supervisor,
    *,
    duration_s: float,
    seed: int,
    server_kills: int,
    client_kills: int,
    senders: int,
    quiet_timeout_s: float,
) -> ChaosResult:
    """Load, kills, recovery, verify: the whole run against the cluster that supervisor runs."""
    status = supervisor.status()
    access, clients = checking.of_cluster(status)
    before = {process.name: process.restarts for process in status.processes}
    load = senders_of(config, senders)
    plan = plan_kills(seed, duration_s, server_kills, client_kills)
    driver = _Driver(config, supervisor, access, clients, load)
    asyncio.run(driver.drive(plan, duration_s, quiet_timeout_s))
    after = supervisor.status()
    restarts = sum(process.restarts - before.get(process.name, 0) for process in after.processes)
    histories = checking.fetch_histories(
        access, {**{s.group: s.member for s in load}, **{c.group: c.member for c in clients}}
    )
    reports = checking.verify(access, clients, histories)
    lost_sends = [
        f"{sender.member}'s note #{seq} to {sender.group}: stored, the server said, but not in its history"
        for sender, seq, text in driver.acknowledged
        if (stored := histories[sender.group].notes.get(seq)) is None or stored.text != text
    ]
    started = driver.started
    pause, who = driver.watcher.longest_pause([(started + k.at_s, k.name) for k in driver.kills])
    return ChaosResult(
        seed,
        len(driver.acknowledged),
        driver.kills,
        restarts,
        pause,
        who,
        reports,
        lost_sends,
        driver.trouble,
    )


class _Driver:
    def __init__(
        self,
        config: ClusterConfig,
        supervisor: Supervisor,
        access: checking.ServerAccess,
        clients: list[checking.ClientLog],
        load: list[Sender],
    ) -> None:
        self.config = config
        self.supervisor = supervisor
        self.access = access
        self.clients = clients
        self.load = load
        self.watcher = _Watcher(clients)
        self.acknowledged: list[tuple[Sender, int, str]] = []
        self.kills: list[Killed] = []
        self.trouble: list[str] = []
        self.started = time.monotonic()
        self._killed: dict[str, int] = {}

    async def drive(self, plan: Sequence[Kill], duration_s: float, quiet_timeout_s: float) -> None:
        self.started = time.monotonic()
        stop = asyncio.Event()
        watching = asyncio.create_task(self._watch(), name="watch-logs")
        try:
            sending = [asyncio.create_task(self._send(i, s, stop)) for i, s in enumerate(self.load)]
            killing = asyncio.create_task(self._kill_all(plan))
            await asyncio.sleep(duration_s)
            stop.set()
            await asyncio.gather(*sending)
            await killing
            await self._all_back()
            if not await asyncio.to_thread(
                checking.wait_for_quiet, self.access, self.clients, quiet_timeout_s
            ):
                self.trouble.append(f"not quiet {quiet_timeout_s:.0f} s after the load ended")
        finally:
            watching.cancel()
            await asyncio.gather(watching, return_exceptions=True)
        self.watcher.poll()

    async def _watch(self) -> None:
        while True:
            self.watcher.poll()
            await asyncio.sleep(WATCH_INTERVAL_S)

    async def _send(self, index: int, sender: Sender, stop: asyncio.Event) -> None:
        token = self.access.member_token(sender.member)
        if token is None:
            self.trouble.append(f"no token for {sender.member} in {self.access.home / 'tokens'}")
            return
        servers = list(self.access.servers)
        servers = servers[index % len(servers) :] + servers[: index % len(servers)]
        backoff = Backoff(initial_s=0.05, max_s=1.0)
        failed = 0
        async with ChatClient(servers, token, backoff=backoff, send_retry_s=SEND_RETRY_S) as client:
            number = 0
            while not stop.is_set():
                text = f"chaos {sender.member} #{number}"
                number += 1
                try:
                    note = await client.send(sender.group, text)
                except ChatError:
                    failed += 1
                else:
                    self.acknowledged.append((sender, note.seq, text))
                await asyncio.sleep(SEND_INTERVAL_S)
        if failed:
            self.trouble.append(f"{failed} sends by {sender.member} failed for {SEND_RETRY_S:.0f} s")

    async def _kill_all(self, plan: Sequence[Kill]) -> None:
        for kill in plan:
            await asyncio.sleep(max(0.0, self.started + kill.at_s - time.monotonic()))
            await self._kill(kill)

    def _candidates(self, kind: KillKind, status: cluster_pb2.GetStatusResponse) -> list[str]:
        """What may be killed now: a running client that its policy restarts; a SERVING replica
        while another is SERVING too."""
        if kind == "server":
            if self.config.server.restart == "no":
                return []
            serving = [p.name for p in status.processes if p.kind == "server" and _serving(p)]
            return serving if len(serving) >= 2 else []
        return [
            p.name
            for p in status.processes
            if p.kind == "client"
            and p.state == "running"
            and p.pid
            and (client := self.config.client(p.member)) is not None
            and client.restart != "no"
        ]

    async def _kill(self, kill: Kill) -> None:
        deadline = time.monotonic() + KILL_WAIT_S
        while True:
            status = await asyncio.to_thread(self.supervisor.status)
            candidates = self._candidates(kill.kind, status)
            if candidates:
                name = choose(kill, candidates, self._killed)
                if pid := await asyncio.to_thread(self.supervisor.kill_running, name):
                    break
            if time.monotonic() > deadline:
                what = "two replicas SERVING" if kill.kind == "server" else "a running client it restarts"
                self.trouble.append(
                    f"no {kill.kind} to kill at {kill.at_s:.1f} s: {what} for {KILL_WAIT_S:.0f} s"
                )
                return
            await asyncio.sleep(STATUS_POLL_S)
        self._killed[name] = self._killed.get(name, 0) + 1
        self.kills.append(Killed(time.monotonic() - self.started, name, kill.kind, pid))

    async def _all_back(self) -> None:
        """Until every process runs again (a replica SERVING)."""
        deadline = time.monotonic() + BACK_TIMEOUT_S
        while True:
            status = await asyncio.to_thread(self.supervisor.status)
            down = [p.name for p in status.processes if not (_serving(p) if p.kind == "server" else _up(p))]
            if not down:
                return
            if time.monotonic() > deadline:
                self.trouble.append(
                    f"not running again {BACK_TIMEOUT_S:.0f} s after the load: {', '.join(down)}"
                )
                return
            await asyncio.sleep(STATUS_POLL_S)


def _up(process: cluster_pb2.Process) -> bool:
    return process.state == "running" and process.pid != 0


def _serving(process: cluster_pb2.Process) -> bool:
    return _up(process) and process.health == "SERVING"
