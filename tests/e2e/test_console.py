"""The interactive console in a real terminal (tmux): typing sends, and notes that
arrive while you type print above the input line without garbling it."""

from __future__ import annotations

import shlex
import shutil

import pytest

from tests.e2e.conftest import CHATCTL, Chatctl, Terminal

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def last_nonempty(screen: list[str]) -> str:
    return ([""] + [line for line in screen if line])[-1]


def test_typing_sends_and_arriving_notes_do_not_garble_the_input_line(
    team: Chatctl, terminal: Terminal
) -> None:
    team.run("client start bob --group team --detach")
    terminal.start(f"{CHATCTL} client start alice --group team")
    terminal.wait_for_screen(
        lambda s: any(line.startswith("* subscribed to team") for line in s), "the subscription"
    )
    terminal.wait_for_screen(lambda s: last_nonempty(s) == "alice@team>", "the prompt")

    terminal.type("half a thou")
    terminal.wait_for_screen(lambda s: last_nonempty(s) == "alice@team> half a thou", "the typed text")
    for text in ("while you type 1", "while you type 2"):
        team.run(f'send --as bob --group team "{text}"')
    screen = terminal.wait_for_screen(
        lambda s: any(line.endswith("bob: while you type 2") for line in s), "bob's notes"
    )
    assert last_nonempty(screen) == "alice@team> half a thou"
    notes = [line for line in screen if "] bob: while you type" in line]
    assert [line.split("] ", 1)[1] for line in notes] == ["bob: while you type 1", "bob: while you type 2"]

    terminal.type("ght")
    terminal.press("Enter")
    terminal.wait_for_screen(lambda s: any(line == "* sent #3: half a thought" for line in s), "the send")
    team.wait_for_note("bob", "alice", "half a thought")

    terminal.type("/quit")
    terminal.press("Enter")
    assert terminal.wait_for_exit() == 0


HOSTILE = "\x1b[2J\x1b]0;pwned\x07\x1b[31mred\u202eevil\x9b\nforged"
"""Clears the screen, sets the window title, colours, reverses, a C1 CSI, and a new line."""


def test_a_hostile_note_is_shown_as_escapes_and_cannot_forge_a_note_line(
    team: Chatctl, terminal: Terminal
) -> None:
    team.run("client start bob chad --group team --detach")
    terminal.start(f"{CHATCTL} client start alice --group team")
    terminal.wait_for_screen(lambda s: last_nonempty(s) == "alice@team>", "the prompt")
    before = terminal.title()
    forged = "[team #99 12:00:00] chad: I resign"
    team.run(f"send --as bob --group team {shlex.quote(HOSTILE + chr(10) + forged)}")

    shown = r"\x1b[2J\x1b]0;pwned\x07\x1b[31mred\u202eevil\x9b\nforged\n" + forged
    screen = terminal.wait_for_screen(lambda s: any("bob: " in line for line in s), "bob's note")
    assert screen[0].startswith("* subscribed to team"), screen  # not cleared
    assert sum(line.startswith("[team #") for line in screen) == 1, screen  # no forged line
    assert "".join(screen).endswith(f"bob: {shown}alice@team>")
    assert terminal.title() == before
    team.wait_for_note("chad", "bob", shown)  # a detached console logs the same one line
    assert team.notes("chad") == [(1, "bob", shown)]

    for command in ("client logs chad", "client list", "client list --json"):
        output = team.run(command).stdout
        assert not any(ord(c) < 0x20 and c != "\n" or 0x7F <= ord(c) < 0xA0 for c in output), command
        assert "\u202e" not in output, command


def test_ctrl_c_leaves_the_console_with_130(team: Chatctl, terminal: Terminal) -> None:
    terminal.start(f"{CHATCTL} client start alice --group team")
    terminal.wait_for_screen(lambda s: last_nonempty(s) == "alice@team>", "the prompt")
    terminal.press("C-c")
    assert terminal.wait_for_exit() == 130
