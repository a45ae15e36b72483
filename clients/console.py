"""The console client: prints each received note as one line, sends what is typed.

Two faces of one process. On a terminal it is interactive: notes print above
an input line that stays put while you type, `/history [N]` shows the N notes
before the earliest one on screen, and `/quit` leaves. Otherwise
(a pipe, a log file, a detached process) it prints plain lines and sends each
line read from stdin, so scripts and tests can drive it.

Its output lines are described, written and read back in clients/lines.py.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass

from clients.channel import DEFAULT_KEEPALIVE_S, ClientTls, is_connection_failure
from clients.chat_client import ChatClient
from clients.display import visible
from clients.lines import (
    ERROR_PREFIX,
    LOST_PREFIX,
    NOTE_LINE,
    SUBSCRIBED_PREFIX,
    WAITING_PREFIX,
    format_gap,
    format_note,
)
from clients.model import ChatError, ConnectionEvent, Note

QUIT_COMMAND = "/quit"
HELP_COMMAND = "/help"
HISTORY_COMMAND = "/history"
HISTORY_DEFAULT = 20
HISTORY_MAX = 500
"""The most notes the server returns in one page."""
COMMANDS = {
    HELP_COMMAND: "list these commands",
    HISTORY_COMMAND: f"[N] show the N notes before the earliest on screen (default {HISTORY_DEFAULT})",
    QUIT_COMMAND: "leave the console",
}
"""The console's own commands, typed as a line of their own: never sent as notes.
A note that starts with / is typed with two (//like this)."""
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

    say = Screen()
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


class Screen:
    """Prints lines, and remembers the lowest seq of the note lines it printed:
    where /history goes on from."""

    def __init__(self) -> None:
        self.earliest = 0
        """0 while no note is on screen."""

    def __call__(self, line: str) -> None:
        print(line, flush=True)
        if (match := NOTE_LINE.match(line)) is not None:
            seq = int(match["seq"])
            self.earliest = seq if self.earliest == 0 else min(self.earliest, seq)


async def _history(client: ChatClient, group: str, line: str, screen: Screen) -> bool:
    """Runs `/history [N]` if the line is that command: the N notes before the earliest on screen."""
    command, *args = line.split() or [""]
    if command != HISTORY_COMMAND:
        return False
    if not args:
        count = HISTORY_DEFAULT
    elif len(args) == 1 and args[0].isascii() and args[0].isdigit():
        count = int(args[0])
    else:
        count = 0
    if not 1 <= count <= HISTORY_MAX:
        screen(f"* usage: {HISTORY_COMMAND} [N], N from 1 to {HISTORY_MAX} (default {HISTORY_DEFAULT})")
        return True
    try:
        page = await client.history(group, before_seq=screen.earliest, limit=count)
    except ChatError as error:
        screen(f"* no history ({visible(str(error))})")
        return True
    for note in page.notes:
        screen(format_note(note))
    if not page.has_more:
        screen("* no earlier notes")
    return True


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
    async for item in client.notes(options.group, after_seq=options.after_seq):
        say(format_note(item) if isinstance(item, Note) else format_gap(item))


class Leave(Exception):
    """/quit was typed."""


async def _enter(
    client: ChatClient, options: ConsoleOptions, line: str, say: Screen, *, editing: bool
) -> str:
    """Acts on one typed line: a command of the console's, else a note to send.

    Returns what to put back in the input line: a note the server refused, when
    there is an input line to edit it in (editing), so that it is not lost."""
    stripped = line.strip()
    if not stripped:
        return ""
    if stripped.startswith("/") and not stripped.startswith("//"):
        if not await _history(client, options.group, stripped, say):
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


async def _type_lines(client: ChatClient, options: ConsoleOptions, say: Screen) -> None:
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


async def _type_interactively(client: ChatClient, options: ConsoleOptions, say: Screen) -> None:
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
