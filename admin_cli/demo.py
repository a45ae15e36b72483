"""chatctl demo: the three scenarios of chatroom, with real processes, checked.

Alice, Bob, Chad and Doug are separate console client processes. The demo
types into their stdin and reads what they print, exactly as a person at each
console would, against a server it starts itself (or the one --server names).
Absence is checked only after a later note has arrived, since notes arrive in
seq order: if Bob had been sent his own note #2, it would have come before #3.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer

from admin_cli import server_cmd
from admin_cli.admin_api import AdminApi, connect_admin
from admin_cli.client_cmd import client_command
from admin_cli.delivery_cmd import delivery_table
from admin_cli.output import err, fail, out
from admin_cli.processes import Watched
from admin_cli.settings import admin_token, save_member_token
from clients.console import NOTE_LINE, SUBSCRIBED_PREFIX

WAIT_S = 20.0
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


def _is_note(line: str, sender: str, text: str) -> bool:
    match = NOTE_LINE.match(line)
    return match is not None and match["sender"] == sender and match["text"] == text


@dataclass
class Demo:
    server: str
    group: str
    gap_s: float
    consoles: dict[str, Watched] = field(default_factory=dict)
    expectations: list[Expectation] = field(default_factory=list)

    def expect(self, description: str, met: bool) -> None:
        self.expectations.append(Expectation(description, met))
        mark = "[green]✓[/]" if met else "[bold red]✗[/]"
        out.print(f"  {mark} {description}")

    def online(self, member: str) -> Watched:
        console = self.consoles[member] = _start_console(member, self.group, self.server)
        subscribed = console.wait_for_line(lambda line: line.startswith(SUBSCRIBED_PREFIX), WAIT_S)
        out.print(
            f"  [cyan]{member}[/] comes online" + ("" if subscribed else " [red](did not subscribe)[/]")
        )
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
            got = sent and _received(self.consoles[receiver], sender, text)
            self.expect(f"{receiver} receives {sender}'s note", got)

    def check_not_echoed(self, member: str, text: str) -> None:
        got = _has_line(self.consoles[member], member, text)
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
        doug = _start_console("doug", self.group, self.server)
        code = _exit_code(doug)
        refusal = doug.wait_for_line(lambda line: "PERMISSION_DENIED" in line, 0)
        out.print(f"  [cyan]doug[/] connects: {refusal or 'no refusal'}", soft_wrap=True)
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

    Example: chatctl demo
    """
    token = admin_token() if server else None
    home = Path(tempfile.mkdtemp(prefix="chatroom-demo-"))
    with _environment(CHATROOM_HOME=str(home), **({"CHATROOM_ADMIN_TOKEN": token} if token else {})):
        embedded = None
        if server is None:
            embedded = server_cmd.start_detached(["--listen=127.0.0.1:0"])
            server = str(embedded.details["address"])
            out.print(f"started a server on {server} (state in {home})")
        group = "team" if embedded else f"demo-{uuid.uuid4().hex[:6]}"
        run = Demo(server, group, gap)
        try:
            with connect_admin(server) as api:
                created = api.create_group(group, ["alice", "bob", "chad"])
                for credential in created.credentials:
                    save_member_token(credential.member, credential.token)
                save_member_token("doug", api.issue_token("doug"))
                out.print(f"created group {group} with alice, bob and chad; doug has a token but no group")
                run.run()
                run.check_delivery(api)
        finally:
            run.stop()
            if embedded is not None:
                embedded.process.stop(15)
            if not keep:
                shutil.rmtree(home, ignore_errors=True)
    failed = [e for e in run.expectations if not e.met]
    out.rule()
    if failed:
        err.print(f"[bold red]{len(failed)} of {len(run.expectations)} expectations failed[/]")
        fail("demo failed: " + "; ".join(e.description for e in failed))
    out.print(f"[bold green]all {len(run.expectations)} expectations met[/]")
    if keep:
        out.print(f"logs and state kept in {home}")
