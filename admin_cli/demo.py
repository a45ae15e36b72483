"""chatctl demo: the three scenarios of chatroom, with real processes, checked.

Alice, Bob, Chad and Doug are separate console client processes. The demo
types into their stdin and reads what they print, exactly as a person at each
console would, against a server it starts itself (or the one --server names).
Absence is checked only after a later note has arrived, since notes arrive in
seq order: if Bob had been sent his own note #2, it would have come before #3.
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
from clients.console import NOTE_LINE, SUBSCRIBED_PREFIX

if TYPE_CHECKING:
    from admin_cli.admin_api import AdminApi

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

    @classmethod
    def at_home(cls) -> Cast:
        """On the demo's own fresh server the names are the scenario's own."""
        return cls("team", {role: role for role in ROLES})

    @classmethod
    def visiting(cls) -> Cast:
        """On someone's server, names no one has: the demo never touches a member it did not make."""
        run = secrets.token_hex(4)
        return cls(f"demo-{run}", {role: f"{role}-{run}" for role in ROLES})


@dataclass
class Demo:
    server: str
    cast: Cast
    gap_s: float
    consoles: dict[str, Watched] = field(default_factory=dict)
    expectations: list[Expectation] = field(default_factory=list)
    created: bool = False

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
        played = "" if names["alice"] == "alice" else " (" + ", ".join(names[role] for role in ROLES) + ")"
        info(f"created group {self.group} with alice, bob and chad; doug has a token but no group{played}")

    def clean_up(self, api: AdminApi) -> bool:
        """Deletes the group the demo made (its streams end); False if that failed."""
        if not self.created:
            return True
        try:
            api.delete_group(self.group)
        except typer.Exit:
            note(f"the demo group {self.group} is left on {self.server}: chatctl group delete {self.group}")
            return False
        self.created = False
        return True

    def expect(self, description: str, met: bool) -> None:
        self.expectations.append(Expectation(description, met))
        mark = "[green]✓[/]" if met else "[bold red]✗[/]"
        out.print(f"  {mark} {description}")

    def console(self, role: str) -> Watched:
        return _start_console(self.cast.members[role], self.group, self.server)

    def online(self, member: str) -> Watched:
        console = self.consoles[member] = self.console(member)
        subscribed = console.wait_for_line(lambda line: line.startswith(SUBSCRIBED_PREFIX), WAIT_S)
        why = "" if subscribed else f" [red](did not subscribe: {escape(_last_line(console))})[/]"
        out.print(f"  [cyan]{member}[/] comes online{why}", soft_wrap=True)
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
        self.expect(
            "doug receives nothing", not any(NOTE_LINE.match(line) for line in doug.output.splitlines())
        )
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
        for console in self.consoles.values():
            console.stop(STOP_GRACE_S)


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
    gap: Annotated[float, typer.Option(min=0, help="Seconds Bob and Chad stay offline in scenario 1.")] = 5.0,
    keep: Annotated[bool, typer.Option(help="Keep the temporary state directory and logs.")] = False,
) -> None:
    """Run the three scenarios with real client processes and check every expectation.

    With --server it makes a group and members of its own and deletes the group at the end.

    Example: chatctl demo
    """
    from admin_cli.admin_api import connect_admin

    token = admin_token() if server else None
    home = Path(tempfile.mkdtemp(prefix="chatroom-demo-"))
    interrupted = False
    cleaned = True
    previous_sigterm = signal.signal(signal.SIGTERM, signal.default_int_handler)  # cleans up like Ctrl-C
    try:
        with _environment(CHATROOM_HOME=str(home), **({"CHATROOM_ADMIN_TOKEN": token} if token else {})):
            embedded = None
            if server is None:
                embedded = server_cmd.start_detached(["--listen=127.0.0.1:0"])
                server = str(embedded.details["address"])
                info(f"started a server on {server} (state in {home})")
            run = Demo(server, Cast.at_home() if embedded else Cast.visiting(), gap)
            try:
                with connect_admin(server) as api:
                    try:
                        run.enrol(api)
                        run.run()
                        run.check_delivery(api)
                    finally:
                        run.stop()
                        cleaned = run.clean_up(api)
            except KeyboardInterrupt:
                interrupted = True
            finally:
                if embedded is not None:
                    embedded.process.stop(15)
                if not keep:
                    shutil.rmtree(home, ignore_errors=True)
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)
    if interrupted:
        fail("demo interrupted" if cleaned else f"demo interrupted; its group {run.group} is left", 130)
    failed = [e for e in run.expectations if not e.met]
    out.rule()
    if not cleaned:
        fail(f"the demo could not delete its group {run.group}")
    if failed:
        err.print(f"[bold red]{len(failed)} of {len(run.expectations)} expectations failed[/]")
        fail("demo failed: " + "; ".join(e.description for e in failed))
    out.print(f"[bold green]all {len(run.expectations)} expectations met[/]")
    if keep:
        info(f"logs and state kept in {home}")
