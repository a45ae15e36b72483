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
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from admin_cli import server_cmd
from admin_cli.client_cmd import client_command
from admin_cli.delivery_cmd import delivery_table
from admin_cli.output import err, fail, out
from admin_cli.settings import admin_token, save_member_token
from clients.lines import NOTE_LINE, SUBSCRIBED_PREFIX

if TYPE_CHECKING:
    from admin_cli.admin_api import AdminApi

WAIT_S = 20.0


@dataclass
class Expectation:
    description: str
    met: bool


class ConsoleProcess:
    """A console client process whose stdin the demo types into and whose lines it reads."""

    def __init__(self, member: str, group: str, server: str) -> None:
        self.member = member
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._process = subprocess.Popen(
            client_command(member, group, server),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self._reader = threading.Thread(target=self._read, name=f"{member}-output", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[str], bool], timeout_s: float = WAIT_S) -> str | None:
        """The first line satisfying predicate, waiting for it; None on timeout or exit."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                match = next((line for line in self.lines if predicate(line)), None)
                remaining = deadline - time.monotonic()
                if match is not None or remaining <= 0 or not self._reader.is_alive():
                    return match
                self._changed.wait(remaining)

    def received(self, sender: str, text: str) -> bool:
        return self.wait_for(lambda line: _is_note(line, sender, text)) is not None

    def has_line(self, sender: str, text: str) -> bool:
        with self._changed:
            return any(_is_note(line, sender, text) for line in self.lines)

    def type(self, text: str) -> int | None:
        """Types a line; returns the seq the server gave it, once the console says it was sent."""
        assert self._process.stdin is not None
        self._process.stdin.write(text + "\n")
        self._process.stdin.flush()
        outcome = self.wait_for(
            lambda line: line.startswith(("* sent #", "* not sent")) and line.endswith(f": {text}")
        )
        if outcome is None or not outcome.startswith("* sent #"):
            return None
        return int(outcome.split("#")[1].split(":")[0])

    def exit_code(self, timeout_s: float = WAIT_S) -> int | None:
        try:
            return self._process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._reader.join(5)


def _is_note(line: str, sender: str, text: str) -> bool:
    match = NOTE_LINE.match(line)
    return match is not None and match["sender"] == sender and match["text"] == text


@dataclass
class Demo:
    server: str
    group: str
    gap_s: float
    consoles: dict[str, ConsoleProcess] = field(default_factory=dict)
    expectations: list[Expectation] = field(default_factory=list)

    def expect(self, description: str, met: bool) -> None:
        self.expectations.append(Expectation(description, met))
        mark = "[green]✓[/]" if met else "[bold red]✗[/]"
        out.print(f"  {mark} {description}")

    def online(self, member: str) -> ConsoleProcess:
        console = self.consoles[member] = ConsoleProcess(member, self.group, self.server)
        subscribed = console.wait_for(lambda line: line.startswith(SUBSCRIBED_PREFIX))
        out.print(
            f"  [cyan]{member}[/] comes online" + ("" if subscribed else " [red](did not subscribe)[/]")
        )
        return console

    def say(self, member: str, text: str) -> bool:
        seq = self.consoles[member].type(text)
        out.print(
            f"  [cyan]{member}[/] sends #{seq}: {text}"
            if seq
            else f"  [cyan]{member}[/] fails to send: {text}"
        )
        self.expect(f"{member}'s note is stored", seq is not None)
        return seq is not None

    def check_received(self, sender: str, text: str, *receivers: str, sent: bool = True) -> None:
        for receiver in receivers:
            got = sent and self.consoles[receiver].received(sender, text)
            self.expect(f"{receiver} receives {sender}'s note", got)

    def check_not_echoed(self, member: str, text: str) -> None:
        got = self.consoles[member].has_line(member, text)
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
        doug = ConsoleProcess("doug", self.group, self.server)
        code = doug.exit_code()
        refusal = doug.wait_for(lambda line: "PERMISSION_DENIED" in line, timeout_s=0)
        out.print(f"  [cyan]doug[/] connects: {refusal or 'no refusal'}", soft_wrap=True)
        self.expect("doug is refused and exits with an error", code not in (None, 0) and refusal is not None)
        self.expect("doug receives nothing", not any(NOTE_LINE.match(line) for line in doug.lines))
        doug.stop()

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
            console.stop()


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
    from admin_cli.admin_api import connect_admin

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
