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

from clients.channel import ClientTls
from clients.chat_client import ChatClient
from clients.display import visible
from clients.lines import ERROR_PREFIX, NOTE_LINE, SUBSCRIBED_PREFIX, format_gap, format_note
from clients.model import ChatError, ConnectionEvent, Note

QUIT_COMMAND = "/quit"
HISTORY_COMMAND = "/history"
HISTORY_DEFAULT = 20
HISTORY_MAX = 500
"""The most notes the server returns in one page."""
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


def format_event(event: ConnectionEvent, member: str) -> str:
    if event.kind == "subscribed":
        return f"{SUBSCRIBED_PREFIX}{event.group} on {event.server} as {member}"
    return f"* connection lost ({visible(event.detail)}); retrying in {event.retry_in_s:.1f} s"


async def run_console(options: ConsoleOptions) -> int:
    """Runs until /quit, end of input on a terminal, SIGINT or SIGTERM; returns the exit code."""

    say = Screen()
    stop = asyncio.Event()
    interrupted = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, interrupted.set)
    client = ChatClient(
        options.servers,
        options.token,
        on_event=lambda event: say(format_event(event, options.member)),
        tls=options.tls,
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
            print(f"{ERROR_PREFIX}{visible(str(error))}", file=sys.stderr, flush=True)
            return 1
        interrupted_by_ctrl_c = interrupted.is_set() or (
            sender in done and isinstance(sender.exception(), Interrupted)
        )
        return INTERRUPTED_EXIT_CODE if interrupted_by_ctrl_c else 0


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


async def _send(client: ChatClient, group: str, text: str, say: Callable[[str], None]) -> None:
    try:
        note = await client.send(group, text)
    except ChatError as error:
        say(f"* not sent ({visible(str(error))}): {visible(text)}")
    else:
        say(f"* sent #{note.seq}: {visible(note.text)}")


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
    while (line := await lines.get()) is not None:
        if line.strip() == QUIT_COMMAND:
            return
        if await _history(client, options.group, line, say):
            continue
        if line.strip():
            await _send(client, options.group, line, say)
    await asyncio.Event().wait()


async def _type_interactively(client: ChatClient, options: ConsoleOptions, say: Screen) -> None:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.patch_stdout import patch_stdout

    prompt: PromptSession[str] = PromptSession(f"{options.member}@{options.group}> ")
    with patch_stdout(raw=True):
        while True:
            try:
                line = await prompt.prompt_async()
            except EOFError:
                return
            except KeyboardInterrupt:
                raise Interrupted from None
            if line.strip() == QUIT_COMMAND:
                return
            if await _history(client, options.group, line, say):
                continue
            if line.strip():
                await _send(client, options.group, line, say)
