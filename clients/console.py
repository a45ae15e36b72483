"""The console client: prints each received note as one line, sends what is typed.

Two faces of one process. On a terminal it is interactive: notes print above
an input line that stays put while you type, and `/quit` leaves. Otherwise
(a pipe, a log file, a detached process) it prints plain lines and sends each
line read from stdin, so scripts and tests can drive it.

Output lines::

    [team #3 12:00:01] bob: hello      a note received
    * sent #4: hi bob                  a note this member sent
    * not sent (reason): hi bob        a note the server refused
    * subscribed to team on ...        connection events, each change once
    * waiting: the server at ... is not answering: ...
"""

from __future__ import annotations

import asyncio
import re
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from clients.channel import DEFAULT_KEEPALIVE_S, ClientTls, is_connection_failure
from clients.chat_client import ChatClient
from clients.display import visible
from clients.model import ChatError, ConnectionEvent, Note

QUIT_COMMAND = "/quit"
HELP_COMMAND = "/help"
COMMANDS = {
    HELP_COMMAND: "list these commands",
    QUIT_COMMAND: "leave the console",
}
"""The console's own commands, typed as a line of their own: never sent as notes.
A note that starts with / is typed with two (//like this)."""
SUBSCRIBED_PREFIX = "* subscribed to "
LOST_PREFIX = "* connection lost "
WAITING_PREFIX = "* waiting: "
ERROR_PREFIX = "error: "
INTERRUPTED_EXIT_CODE = 130
"""Ctrl-C, as shells report a process ended by SIGINT."""


@dataclass(frozen=True, slots=True)
class ConsoleOptions:
    member: str
    group: str
    servers: list[str]
    token: str
    interactive: bool
    tls: ClientTls | None = None
    after_seq: int = 0
    """The last note an earlier run of this console showed."""
    keepalive_s: float = DEFAULT_KEEPALIVE_S
    token_source: str = "CHATROOM_TOKEN"
    """Where the token was read from (a file, a variable), for the hint when it is refused."""


NOTE_LINE = re.compile(
    r"^\[(?P<group>[a-z0-9][a-z0-9_-]*) #(?P<seq>\d+) \d\d:\d\d:\d\d\]"
    r" (?P<sender>[a-z0-9][a-z0-9_-]*): (?P<text>.*)$"
)
"""A note line as format_note writes it: what chatctl, the demo and the tests read back."""


def format_note(note: Note) -> str:
    """One line whatever the text holds: controls and line breaks are shown as escapes."""
    clock = note.sent_at.astimezone().strftime("%H:%M:%S")
    return f"[{visible(note.group)} #{note.seq} {clock}] {visible(note.sender)}: {visible(note.text)}"


def last_shown(log: Path, group: str) -> int:
    """The highest seq of the group that a console logged to this file.

    Each note line is written at once, so the log is the console's memory of
    what it has shown: a console restarted after a crash resumes after it
    instead of showing a note twice."""
    try:
        with open(log, errors="replace") as lines:
            seqs = [int(m["seq"]) for line in lines if (m := NOTE_LINE.match(line)) and m["group"] == group]
    except FileNotFoundError:
        return 0
    return max(seqs, default=0)


def format_event(event: ConnectionEvent, member: str) -> str:
    if event.kind == "subscribed":
        return f"{SUBSCRIBED_PREFIX}{event.group} on {event.server} as {member}"
    return f"{LOST_PREFIX}({visible(event.detail)}); retrying in {event.retry_in_s:.1f} s"


class ConnectionStatus:
    """What the console says about its connection: each change once, never a line per retry.

    A console that has not subscribed yet says, once every address has been
    tried, why it is waiting; after a lost connection the lost line says it,
    and failed reconnects stay quiet until it is subscribed again."""

    def __init__(self, options: ConsoleOptions) -> None:
        self._member = options.member
        self._servers = options.servers
        self._failed_attempts = 0
        self._said = False

    def line(self, event: ConnectionEvent) -> str | None:
        if event.kind != "attempt_failed":
            self._failed_attempts, self._said = 0, event.kind == "lost"
            return format_event(event, self._member)
        self._failed_attempts += 1
        if self._said or self._failed_attempts < len(self._servers):
            return None
        self._said = True
        if is_connection_failure(event.detail):
            why = (
                f"the server at {self._servers[0]} is not answering"
                if len(self._servers) == 1
                else f"none of the servers at {', '.join(self._servers)} is answering"
            )
            hint = "start one with 'chatctl server start' or point --server / CHATROOM_SERVER at it"
            return f"{WAITING_PREFIX}{visible(why)}: {hint}"
        return (
            f"{WAITING_PREFIX}{visible(event.server)} does not let us subscribe yet ({visible(event.detail)})"
        )


async def run_console(options: ConsoleOptions) -> int:
    """Runs until /quit, end of input on a terminal, SIGINT or SIGTERM; returns the exit code."""

    def say(line: str) -> None:
        print(line, flush=True)

    stop = asyncio.Event()
    interrupted = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, interrupted.set)
    status = ConnectionStatus(options)

    def on_event(event: ConnectionEvent) -> None:
        if (line := status.line(event)) is not None:
            say(line)

    client = ChatClient(
        options.servers,
        options.token,
        on_event=on_event,
        tls=options.tls,
        keepalive_s=options.keepalive_s,
    )
    async with client:
        receiver = asyncio.create_task(_receive(client, options, say))
        typer = _type_interactively if options.interactive else _type_lines
        sender = asyncio.create_task(typer(client, options, say))
        stopper = asyncio.create_task(_first(stop, interrupted))
        done, _ = await asyncio.wait({receiver, sender, stopper}, return_when=asyncio.FIRST_COMPLETED)
        for task in (receiver, sender, stopper):
            task.cancel()
        await asyncio.gather(receiver, sender, stopper, return_exceptions=True)
        if receiver in done and receiver.exception() is not None:
            error = receiver.exception()
            print(f"{ERROR_PREFIX}{refusal(error, options)}", file=sys.stderr, flush=True)
            return 1
        interrupted_by_ctrl_c = interrupted.is_set() or (
            sender in done and isinstance(sender.exception(), Interrupted)
        )
        return INTERRUPTED_EXIT_CODE if interrupted_by_ctrl_c else 0


def refusal(error: BaseException | None, options: ConsoleOptions) -> str:
    """Why the subscription ended for good, with what to do about a refused token."""
    if isinstance(error, ChatError) and error.code.name == "UNAUTHENTICATED":
        return (
            f"the server refused {visible(options.member)}'s token ({visible(error.details)});"
            f" it was read from {visible(options.token_source)}:"
            f" get a new one with 'chatctl token issue {visible(options.member)}'"
        )
    return visible(str(error))


class Interrupted(Exception):
    """Ctrl-C at the prompt (prompt_toolkit reads it as a key, not as SIGINT)."""


async def _first(*events: asyncio.Event) -> None:
    waits = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


async def _receive(client: ChatClient, options: ConsoleOptions, say: Callable[[str], None]) -> None:
    async for note in client.notes(options.group, after_seq=options.after_seq):
        say(format_note(note))


class Leave(Exception):
    """/quit was typed."""


async def _enter(
    client: ChatClient, options: ConsoleOptions, line: str, say: Callable[[str], None], *, editing: bool
) -> str:
    """Acts on one typed line: a command of the console's, else a note to send.

    Returns what to put back in the input line: a note the server refused, when
    there is an input line to edit it in (editing), so that it is not lost."""
    stripped = line.strip()
    if not stripped:
        return ""
    if stripped.startswith("/") and not stripped.startswith("//"):
        _command(stripped.split()[0], say)
        return ""
    text = line.replace("/", "", 1) if stripped.startswith("//") else line  # "//x" sends "/x"
    try:
        note = await client.send(options.group, text)
    except ChatError as error:
        if editing:
            say(f"* not sent ({visible(str(error))}); edit it below and press Enter")
            return line
        say(f"* not sent ({visible(str(error))}): {visible(text)}")
    else:
        say(f"* sent #{note.seq}: {visible(note.text)}")
    return ""


def _command(name: str, say: Callable[[str], None]) -> None:
    if name == QUIT_COMMAND:
        raise Leave
    if name == HELP_COMMAND:
        say("* commands: " + "; ".join(f"{command} {what}" for command, what in COMMANDS.items()))
        say("* a note that starts with / is typed with two: //like this")
        return
    say(f"* unknown command {visible(name)}, not sent: {HELP_COMMAND} lists the commands")


async def _type_lines(client: ChatClient, options: ConsoleOptions, say: Callable[[str], None]) -> None:
    """Sends each stdin line; at end of input keeps listening (detached processes have none)."""
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    def read_stdin() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(lines.put_nowait, line.rstrip("\n"))
        loop.call_soon_threadsafe(lines.put_nowait, None)

    # A daemon thread: a blocked read must not keep the process alive at exit.
    threading.Thread(target=read_stdin, name="stdin", daemon=True).start()
    try:
        while (line := await lines.get()) is not None:
            await _enter(client, options, line, say, editing=False)
    except Leave:
        return
    await asyncio.Event().wait()


async def _type_interactively(
    client: ChatClient, options: ConsoleOptions, say: Callable[[str], None]
) -> None:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.patch_stdout import patch_stdout

    prompt: PromptSession[str] = PromptSession(f"{options.member}@{options.group}> ")
    kept = ""
    with patch_stdout(raw=True):
        while True:
            try:
                line = await prompt.prompt_async(default=kept)
            except EOFError:
                return
            except KeyboardInterrupt:
                raise Interrupted from None
            try:
                kept = await _enter(client, options, line, say, editing=True)
            except Leave:
                return
