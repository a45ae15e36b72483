"""chatctl demo: the three scenarios of chatroom, with real processes, checked.

Alice, Bob, Chad and Doug are separate console client processes. The demo
types into their stdin and reads what they print, exactly as a person at each
console would, against a server it starts itself, the one --server names, or
a cluster of two replicas (--cluster), whose own verify then reads the consoles'
logs. On someone else's server the demo is a guest: a group and members of its
own, the group deleted at the end. Absence is checked only after a later note
has arrived, since notes arrive in seq order: if Bob had been sent his own note
#2, it would have come before #3.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from admin_cli import server_cmd
from admin_cli.client_cmd import client_command
from admin_cli.delivery_cmd import delivery_table
from admin_cli.output import err, fail, info, note, out
from admin_cli.processes import Watched
from admin_cli.settings import admin_token, save_member_token
from clients.lines import NOTE_LINE, SUBSCRIBED_PREFIX

if TYPE_CHECKING:
    from admin_cli.admin_api import AdminApi
    from admin_cli.cluster.verify import ClientLog, ServerAccess

WAIT_S = 20.0
ROLES = ("alice", "bob", "chad", "doug")
STOP_GRACE_S = 10.0


@dataclass
class Expectation:
    description: str
    met: bool


def _start_console(member: str, group: str, server: str) -> Watched:
    """A console client process whose stdin the demo types into and whose lines it reads."""
    return Watched(client_command(member, group, server), stdin=True)


def _received(console: Watched, sender: str, text: str) -> bool:
    return console.wait_for_line(lambda line: _is_note(line, sender, text), WAIT_S) is not None


def _has_line(console: Watched, sender: str, text: str) -> bool:
    return console.wait_for_line(lambda line: _is_note(line, sender, text), 0) is not None


def _type(console: Watched, text: str) -> int | None:
    """Types a line; returns the seq the server gave it, once the console says it was sent."""
    console.write_line(text)
    outcome = console.wait_for_line(
        lambda line: line.startswith(("* sent #", "* not sent")) and line.endswith(f": {text}"), WAIT_S
    )
    if outcome is None or not outcome.startswith("* sent #"):
        return None
    return int(outcome.split("#")[1].split(":")[0])


def _exit_code(console: Watched) -> int | None:
    try:
        return console.wait(WAIT_S)
    except subprocess.TimeoutExpired:
        return None


def _is_a_note(line: str) -> bool:
    return NOTE_LINE.match(line) is not None


def _last_line(console: Watched) -> str:
    lines = [line for line in console.output.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _is_note(line: str, sender: str, text: str) -> bool:
    match = NOTE_LINE.match(line)
    return match is not None and match["sender"] == sender and match["text"] == text


@dataclass(frozen=True)
class Cast:
    """The group and the member names that play alice, bob, chad and doug in one run."""

    group: str
    members: dict[str, str]
    guest: bool = False
    """On someone else's server: what the demo made is deleted at the end."""

    @classmethod
    def at_home(cls) -> Cast:
        """On the demo's own fresh server the names are the scenario's own."""
        return cls("team", {role: role for role in ROLES})

    @classmethod
    def visiting(cls) -> Cast:
        """On someone's server, names no one has: the demo never touches a member it did not make."""
        run = secrets.token_hex(4)
        return cls(f"demo-{run}", {role: f"{role}-{run}" for role in ROLES}, guest=True)


@dataclass
class Demo:
    server: str
    cast: Cast
    gap_s: float
    consoles: dict[str, Watched] = field(default_factory=dict)
    expectations: list[Expectation] = field(default_factory=list)
    created: bool = False
    placement: dict[str, str] = field(default_factory=dict)
    """role → the replica its console connects to; a role not in it uses server."""
    logs: ConsoleLogs | None = None
    """On a cluster: where each console's lines are kept for the cluster's verify."""

    @property
    def group(self) -> str:
        return self.cast.group

    def enrol(self, api: AdminApi) -> None:
        """Creates the group with every role, doug included so that his token too is a new member's,
        then takes doug out of it. CreateGroup issues tokens only to members that had none, so no
        existing member's token is ever replaced."""
        members = [self.cast.members[role] for role in ROLES]
        created = api.create_group(self.group, members)
        self.created = True
        tokens = {credential.member: credential.token for credential in created.credentials}
        for member in members:
            if member not in tokens:
                fail(f"member {member!r} already exists on {self.server}; run the demo again for new names")
            save_member_token(member, tokens[member])
        doug = self.cast.members["doug"]
        api.remove_members(self.group, [doug])
        names = self.cast.members
        played = " (" + ", ".join(names[role] for role in ROLES) + ")" if self.cast.guest else ""
        info(f"created group {self.group} with alice, bob and chad; doug has a token but no group{played}")

    def clean_up(self, api: AdminApi) -> None:
        """As a guest, deletes the group the demo made (its streams end); `created` stays if that failed."""
        if not self.created or not self.cast.guest:
            return
        try:
            api.delete_group(self.group)
        except typer.Exit:
            note(f"the demo group {self.group} is left on {self.server}: chatctl group delete {self.group}")
            return
        self.created = False

    def expect(self, description: str, met: bool) -> None:
        self.expectations.append(Expectation(description, met))
        mark = "[green]✓[/]" if met else "[bold red]✗[/]"
        out.print(f"  {mark} {description}")

    def console(self, role: str) -> Watched:
        if self.logs is not None:
            self.logs.first_start(role)
        return _start_console(self.cast.members[role], self.group, self.placement.get(role, self.server))

    def online(self, member: str) -> Watched:
        console = self.consoles[member] = self.console(member)
        subscribed = console.wait_for_line(lambda line: line.startswith(SUBSCRIBED_PREFIX), WAIT_S)
        if subscribed is None:
            where = f" [red](did not subscribe: {escape(_last_line(console))})[/]"
        else:
            where = f" on {escape(_subscribed_to(subscribed))}" if self.placement else ""
        out.print(f"  [cyan]{member}[/] comes online{where}", soft_wrap=True)
        return console

    def say(self, member: str, text: str) -> bool:
        seq = _type(self.consoles[member], text)
        out.print(
            f"  [cyan]{member}[/] sends #{seq}: {text}"
            if seq
            else f"  [cyan]{member}[/] fails to send: {text}"
        )
        self.expect(f"{member}'s note is stored", seq is not None)
        return seq is not None

    def check_received(self, sender: str, text: str, *receivers: str, sent: bool = True) -> None:
        for receiver in receivers:
            got = sent and _received(self.consoles[receiver], self.cast.members[sender], text)
            self.expect(f"{receiver} receives {sender}'s note", got)

    def check_not_echoed(self, member: str, text: str) -> None:
        got = _has_line(self.consoles[member], self.cast.members[member], text)
        self.expect(f"{member} does not get back its own note {text!r}", not got)

    def run(self) -> None:
        hello, bob_note, alice_note, bye = (
            "Hi team, this is Alice.",
            "Bob here: the build is green.",
            "Shipping it now.",
            "That's all from me.",
        )
        out.rule("Scenario 1: Bob and Chad come online after Alice has sent")
        self.online("alice")
        sent = self.say("alice", hello)
        out.print(f"  [dim]... {self.gap_s:g} s pass with Bob and Chad offline ...[/]")
        time.sleep(self.gap_s)
        self.online("bob")
        self.online("chad")
        self.check_received("alice", hello, "bob", "chad", sent=sent)

        out.rule("Scenario 2: everyone online, Bob sends")
        sent = self.say("bob", bob_note)
        self.check_received("bob", bob_note, "alice", "chad", sent=sent)

        out.rule("Scenario 3: Alice sends; Doug, not a member, connects")
        sent = self.say("alice", alice_note)
        self.check_received("alice", alice_note, "bob", "chad", sent=sent)
        self.doug_is_refused()

        out.rule("Nobody gets their own notes back")
        sent = self.say("chad", bye)
        self.check_received("chad", bye, "alice", "bob", sent=sent)
        # Notes arrive in seq order, so these would have come before Chad's.
        self.check_not_echoed("alice", hello)
        self.check_not_echoed("bob", bob_note)
        self.check_not_echoed("alice", alice_note)

    def doug_is_refused(self) -> None:
        doug = self.console("doug")
        code = _exit_code(doug)
        refusal = doug.wait_for_line(lambda line: "PERMISSION_DENIED" in line, 0)
        out.print(f"  [cyan]doug[/] connects: {escape(refusal or 'no refusal')}", soft_wrap=True)
        self.expect("doug is refused and exits with an error", code not in (None, 0) and refusal is not None)
        self.expect("doug receives nothing", not any(_is_a_note(line) for line in doug.output.splitlines()))
        doug.stop(STOP_GRACE_S)

    def check_delivery(self, api: AdminApi) -> None:
        out.rule("Delivery state")
        deadline = time.monotonic() + WAIT_S
        delivery = api.list_unread(self.group)
        while any(m.unread_count for m in delivery.members) and time.monotonic() < deadline:
            time.sleep(0.1)  # acks reach storage within 100 ms; poll until they have
            delivery = api.list_unread(self.group)
        out.print(delivery_table(delivery))
        self.expect("every member has read everything", not any(m.unread_count for m in delivery.members))

    def stop(self) -> None:
        for role, console in self.consoles.items():
            console.stop(STOP_GRACE_S)
            if self.logs is not None:
                self.logs.keep(role, console)

    def check_placement(self) -> None:
        """That the consoles are where the cluster demo put them, as each console says."""
        shown = {}
        for role in ("alice", "bob", "chad"):
            line = self.consoles[role].wait_for_line(lambda text: text.startswith(SUBSCRIBED_PREFIX), 0)
            shown[role] = _subscribed_to(line) if line else None
        self.expect(
            "alice is on one replica, bob and chad on the other",
            all(shown[role] == self.placement[role] for role in shown) and shown["alice"] != shown["bob"],
        )

    def check_whole(self) -> None:
        """The cluster's own verify: each console showed every note meant for it, once, in order."""
        from admin_cli.cluster.verify import print_reports, verify

        assert self.logs is not None
        out.rule("Cluster verify")
        reports = verify(self.logs.access, [self.logs.client(role) for role in ("alice", "bob", "chad")])
        print_reports(reports, as_json=False)
        for report in reports:
            self.expect(f"{report.name}'s console is whole (cluster verify)", report.ok)


@dataclass
class ConsoleLogs:
    """The demo's consoles kept as a cluster's client logs are, so that verify reads them alike."""

    access: ServerAccess
    directory: Path
    cast: Cast

    def client(self, role: str) -> ClientLog:
        from admin_cli.cluster.verify import ClientLog

        log = self.directory / f"{role}.log"
        return ClientLog(role, self.cast.members[role], self.cast.group, [log])

    def first_start(self, role: str) -> None:
        from admin_cli.cluster.verify import record_first_start

        if role != "doug":  # not a member: nothing of his is verified
            record_first_start(self.access, self.client(role))

    def keep(self, role: str, console: Watched) -> None:
        with open(self.client(role).logs[-1], "a") as log:
            log.writelines(line + "\n" for line in console.lines)


def _subscribed_to(line: str) -> str:
    """The address in the console's "* subscribed to GROUP on ADDRESS as MEMBER"."""
    return line.split(" on ", 1)[-1].rsplit(" as ", 1)[0]


@contextmanager
def _environment(**values: str) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def demo(
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            "-s",
            envvar="CHATROOM_DEMO_SERVER",
            help="Run against this server instead of starting one (uses its admin token).",
        ),
    ] = None,
    cluster: Annotated[
        bool,
        typer.Option(
            "--cluster",
            help="Run on a cluster of two replicas and an embedded PostgreSQL (alice on one, bob and"
            " chad on the other), then verify delivery; the cluster is removed at the end.",
        ),
    ] = False,
    gap: Annotated[float, typer.Option(min=0, help="Seconds Bob and Chad stay offline in scenario 1.")] = 5.0,
    keep: Annotated[bool, typer.Option(help="Keep the temporary state directory and logs.")] = False,
) -> None:
    """Run the three scenarios with real client processes and check every expectation.

    With --server it makes a group and members of its own and deletes the group at the end.

    Examples: chatctl demo

    chatctl demo --cluster
    """
    if server and cluster:
        fail("--server and --cluster do not go together: the cluster demo starts its own cluster")
    token = admin_token() if server else None
    home = Path(tempfile.mkdtemp(prefix="chatroom-demo-"))
    interrupted = False
    run: Demo | None = None
    previous_sigterm = signal.signal(signal.SIGTERM, signal.default_int_handler)  # cleans up like Ctrl-C
    try:
        with _environment(CHATROOM_HOME=str(home), **({"CHATROOM_ADMIN_TOKEN": token} if token else {})):
            try:
                if cluster:
                    run = _on_a_cluster(home, gap, keep)
                elif server:
                    run = _play(Demo(server, Cast.visiting(), gap))
                else:
                    run = _on_own_server(home, gap)
            except KeyboardInterrupt:
                interrupted = True
            finally:
                if not keep:
                    shutil.rmtree(home, ignore_errors=True)
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)
    if interrupted or run is None:
        fail("demo interrupted", 130)
    failed = [e for e in run.expectations if not e.met]
    out.rule()
    if run.created and run.cast.guest:
        fail(f"the demo could not delete its group {run.group}")
    if failed:
        err.print(f"[bold red]{len(failed)} of {len(run.expectations)} expectations failed[/]")
        fail("demo failed: " + "; ".join(e.description for e in failed))
    out.print(f"[bold green]all {len(run.expectations)} expectations met[/]")
    if keep:
        info(f"logs and state kept in {home}")


def _play(run: Demo) -> Demo:
    """Makes the group, runs the scenarios, checks delivery; stops the consoles and deletes the group
    whatever happens."""
    from admin_cli.admin_api import connect_admin

    with connect_admin(run.server) as api:
        try:
            run.enrol(api)
            run.run()
            run.check_delivery(api)
        finally:
            run.stop()
            run.clean_up(api)
    return run


def _on_own_server(home: Path, gap: float) -> Demo:
    embedded = server_cmd.start_detached(["--listen=127.0.0.1:0"])
    try:
        server = str(embedded.details["address"])
        info(f"started a server on {server} (state in {home})")
        return _play(Demo(server, Cast.at_home(), gap))
    finally:
        embedded.process.stop(15)


def _on_a_cluster(home: Path, gap: float, keep: bool) -> Demo:
    """Brings up a cluster of the demo's own, plays on it, verifies it, and takes it down with its data
    (kept with --keep)."""
    from admin_cli.cluster import cli as cluster_cli
    from admin_cli.cluster.config import load
    from admin_cli.cluster.home import ClusterHome
    from admin_cli.cluster.remote import Supervisor
    from admin_cli.cluster.verify import ServerAccess
    from admin_cli.settings import client_tls
    from services.state_dir import read_secret

    file = _cluster_file(home)
    config = load(file)
    cluster_home = ClusterHome.of(config.name)
    info(f"starting a cluster: an embedded PostgreSQL and 2 replicas (state in {cluster_home.root})")
    try:
        cluster_cli.up(file=file)
        with Supervisor(config.name, cluster_home) as supervisor:
            servers = supervisor.status().servers.split(",")
        token = read_secret(cluster_home.admin_token)
        if token is None:
            fail(f"the cluster wrote no admin token to {cluster_home.admin_token}")
        with _environment(CHATROOM_HOME=str(cluster_home.root), CHATROOM_ADMIN_TOKEN=token):
            cast = Cast.at_home()
            access = ServerAccess(servers, token, cluster_home.root, client_tls())
            run = Demo(
                servers[0],
                cast,
                gap,
                placement={"alice": servers[0], "bob": servers[1], "chad": servers[1], "doug": servers[1]},
                logs=ConsoleLogs(access, cluster_home.root / "clients", cast),
            )
            _play(run)
            run.check_placement()
            run.check_whole()
        return run
    finally:
        out.rule("Cluster down")
        cluster_cli.down(file=file, volumes=not keep)


def _cluster_file(directory: Path) -> Path:
    """A cluster file of two replicas on free ports and an embedded PostgreSQL; groups the demo makes."""
    from admin_cli.postgres import free_port, port_is_free

    port = next((p for p in (free_port() for _ in range(100)) if p < 65535 and port_is_free(p + 1)), None)
    if port is None:
        fail("found no two free ports in a row on 127.0.0.1 for the cluster's replicas")
    path = directory / "chatroom.toml"
    path.write_text(f'name = "demo"\n\n[server]\nreplicas = 2\nport = {port}\n')
    return path
