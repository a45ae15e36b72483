"""The interactive console in a real terminal (tmux): typing sends, and notes that
arrive while you type print above the input line without garbling it."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.e2e.conftest import CHATCTL, Chatctl
from tests.support import TIMEOUT_S

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Terminal:
    def __init__(self, env: dict[str, str]) -> None:
        self.socket = f"chatroom-{uuid.uuid4().hex[:8]}"
        self.env = env

    def tmux(self, *args: str) -> str:
        return subprocess.run(
            ["tmux", "-L", self.socket, *args], env=self.env, capture_output=True, text=True, check=True
        ).stdout

    def start(self, command: str) -> None:
        self.tmux("new-session", "-d", "-s", "console", "-x", "100", "-y", "15", command)

    def screen(self) -> list[str]:
        return [line.rstrip() for line in self.tmux("capture-pane", "-p", "-t", "console").splitlines()]

    def wait_for_screen(self, condition: Callable[[list[str]], bool], what: str) -> list[str]:
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            screen = self.screen()
            if condition(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"screen never showed {what}:\n" + "\n".join(screen))
            time.sleep(0.05)

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", "console", "-l", text)

    def press(self, key: str) -> None:
        self.tmux("send-keys", "-t", "console", key)

    def alive(self) -> bool:
        return (
            subprocess.run(
                ["tmux", "-L", self.socket, "has-session"], env=self.env, capture_output=True
            ).returncode
            == 0
        )

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], env=self.env, capture_output=True)


@pytest.fixture
def terminal(team: Chatctl) -> Iterator[Terminal]:
    opened = Terminal(team.env)
    yield opened
    opened.close()


def last_nonempty(screen: list[str]) -> str:
    return [line for line in screen if line][-1]


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
    deadline = time.monotonic() + TIMEOUT_S
    while terminal.alive():
        assert time.monotonic() < deadline, "the console did not quit"
        time.sleep(0.05)
