"""History in the interactive console (tmux): /history pages back from the earliest
note on screen, and notes deleted before they were read show as one line."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator

import pytest

from tests.e2e.conftest import CHATCTL, Chatctl, Terminal
from tests.support import wait_until

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def note_lines(screen: list[str]) -> list[str]:
    """What follows each note line's clock: "sender: text"."""
    return [line.split("] ", 1)[1] for line in screen if line.startswith("[team #")]


def shows(line: str) -> Callable[[list[str]], bool]:
    return lambda screen: line in screen


def prompt_shown(screen: list[str]) -> bool:
    """The console is reading again (keys typed before that may be lost)."""
    return [line for line in screen if line][-1:] == ["bob@team>"]


def test_history_shows_the_notes_before_the_earliest_on_screen(team: Chatctl, terminal: Terminal) -> None:
    terminal.start(f"{CHATCTL} client start bob --group team")
    terminal.wait_for_screen(prompt_shown, "the prompt")
    for i in range(1, 6):
        terminal.wait_for_screen(prompt_shown, "the prompt")
        terminal.type(f"own {i}")
        terminal.press("Enter")
        terminal.wait_for_screen(shows(f"* sent #{i}: own {i}"), f"the send of own {i}")
    team.run('send --as alice --group team "from alice"')
    terminal.wait_for_screen(lambda s: "alice: from alice" in note_lines(s), "alice's note")

    terminal.wait_for_screen(prompt_shown, "the prompt")
    terminal.type("/history 3")
    terminal.press("Enter")
    screen = terminal.wait_for_screen(lambda s: len(note_lines(s)) == 4, "three earlier notes")
    assert note_lines(screen) == ["alice: from alice", "bob: own 3", "bob: own 4", "bob: own 5"]
    assert "* no earlier notes" not in screen

    terminal.wait_for_screen(prompt_shown, "the prompt")
    terminal.type("/history")
    terminal.press("Enter")
    screen = terminal.wait_for_screen(lambda s: "* no earlier notes" in s, "the start of the history")
    assert note_lines(screen)[4:] == ["bob: own 1", "bob: own 2"]
    assert [line for line in screen if line.startswith("[team #")][1].startswith("[team #3 ")

    terminal.wait_for_screen(prompt_shown, "the prompt")
    terminal.type("/quit")
    terminal.press("Enter")
    assert terminal.wait_for_exit() == 0


@pytest.fixture
def bounded(chatctl: Chatctl) -> Iterator[Chatctl]:
    """A server that keeps at most 3 notes a group, with group team of alice and bob."""
    chatctl.start_server("--retention-max-notes 3")
    chatctl.run("group create team --members alice,bob")
    yield chatctl


def test_notes_deleted_before_they_were_read_show_as_one_line(bounded: Chatctl) -> None:
    for i in range(1, 9):
        bounded.run(f"send --as alice --group team n{i}")

    def deleted() -> bool:
        return bool(bounded.run("group show team --json").json()["first_seq"] == 6)

    wait_until(deleted, what="the hard limit to delete 1..5")
    terminal = Terminal(bounded.env)
    try:
        terminal.start(f"{CHATCTL} client start bob --group team")
        screen = terminal.wait_for_screen(lambda s: "alice: n8" in note_lines(s), "the kept notes")
        gap = "* notes 1\u20135 were deleted before you read them (the group keeps at most 3 notes)"
        shown = [line for line in screen if line.startswith(("* notes", "[team #"))]
        assert shown[0] == gap
        assert note_lines(shown[1:]) == ["alice: n6", "alice: n7", "alice: n8"]

        terminal.wait_for_screen(prompt_shown, "the prompt")
        terminal.type("/history 600")
        terminal.press("Enter")
        terminal.wait_for_screen(
            lambda s: any(line.startswith("* usage: /history [N]") for line in s), "usage"
        )
        terminal.wait_for_screen(prompt_shown, "the prompt")
        terminal.type("/history")
        terminal.press("Enter")
        screen = terminal.wait_for_screen(lambda s: "* no earlier notes" in s, "no earlier notes")
        assert len(note_lines(screen)) == 3
        terminal.wait_for_screen(prompt_shown, "the prompt")
        terminal.type("/quit")
        terminal.press("Enter")
        assert terminal.wait_for_exit() == 0
    finally:
        terminal.close()
