"""chatctl as a user runs it: the installed executable, a state directory of the test's own."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from clients.lines import NOTE_LINE
from tests.support import TIMEOUT_S

CHATCTL = str(Path(sys.executable).parent / "chatctl")


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


class Chatctl:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CHATROOM_")}
        self.env["CHATROOM_HOME"] = str(home)
        self.env["COLUMNS"] = "200"

    def run(self, command: str, *, check: bool = True, timeout_s: float = 60) -> Result:
        completed = subprocess.run(
            [CHATCTL, *shlex.split(command)],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            text=True,
            env=self.env,
            timeout=timeout_s,
            check=False,
        )
        result = Result(completed.returncode, completed.stdout, completed.stderr)
        if check:
            assert result.code == 0, (
                f"chatctl {command} failed ({result.code}): {result.stderr}{result.stdout}"
            )
        return result

    def start_server(self, *options: str) -> str:
        started = self.run(" ".join(["server start --detach --listen 127.0.0.1:0", *options]))
        match = re.search(r"listening on (\S+),", started.stdout)
        assert match is not None, started.stdout
        self.env["CHATROOM_SERVER"] = match[1]
        return match[1]

    def log(self, member: str) -> str:
        return self.run(f"client logs {member}").stdout

    def notes(self, member: str) -> list[tuple[int, str, str]]:
        found = [NOTE_LINE.match(line) for line in self.log(member).splitlines()]
        return [(int(m["seq"]), m["sender"], m["text"]) for m in found if m]

    def wait_for_note(self, member: str, sender: str, text: str, timeout_s: float = TIMEOUT_S) -> None:
        """Polls the member's log (as a user would) until the note shows up."""
        deadline = time.monotonic() + timeout_s
        while not any(n[1:] == (sender, text) for n in self.notes(member)):
            if time.monotonic() > deadline:
                raise AssertionError(f"{member} never showed {sender}: {text}\n{self.log(member)}")
            time.sleep(0.1)

    def clients(self) -> dict[str, dict[str, Any]]:
        listed = self.run("client list --json").json()
        assert isinstance(listed, list)
        return {entry["name"]: entry for entry in listed}


@pytest.fixture
def chatctl(tmp_path: Path) -> Iterator[Chatctl]:
    cli = Chatctl(tmp_path / "home")
    yield cli
    cli.run("client stop --all", check=False)
    cli.run("server stop", check=False)


@pytest.fixture
def team(chatctl: Chatctl) -> Chatctl:
    """A running server with group team of alice, bob and chad."""
    chatctl.start_server()
    chatctl.run("group create team --members alice,bob,chad")
    return chatctl


class Terminal:
    """A real terminal (tmux) running one command.

    The command's exit status is written by a shell around it rather than read
    from tmux, which now and then leaves an exited command unreaped for good."""

    def __init__(self, env: dict[str, str]) -> None:
        self.socket = f"chatroom-{uuid.uuid4().hex[:8]}"
        self.env = env
        self._status = Path(tempfile.mkdtemp(prefix="chatroom-terminal-")) / "status"

    def tmux(self, *args: str) -> str:
        return subprocess.run(
            ["tmux", "-L", self.socket, *args], env=self.env, capture_output=True, text=True, check=True
        ).stdout

    def start(self, command: str) -> None:
        """Runs command in a new terminal that stays open after it exits."""
        status = shlex.quote(str(self._status))
        # The shell outlives a Ctrl-C meant for the command (a trap, unlike an ignored signal, is
        # not inherited), then writes the command's status in one rename.
        wrapped = f"trap true INT; {command}; echo $? > {status}.new && mv {status}.new {status}"
        self.tmux(
            "-f",
            "/dev/null",
            "start-server",
            ";",
            "set-option",
            "-g",
            "remain-on-exit",
            "on",
            ";",
            "new-session",
            "-d",
            "-s",
            "console",
            "-x",
            "100",
            "-y",
            "15",
            f"sh -c {shlex.quote(wrapped)}",
        )

    def title(self) -> str:
        return self.tmux("display-message", "-p", "-t", "console", "#{pane_title}").strip()

    def exit_status(self) -> int | None:
        """The command's exit status once it has exited, else None."""
        try:
            return int(self._status.read_text())
        except FileNotFoundError:
            return None

    def wait_for_exit(self) -> int:
        deadline = time.monotonic() + TIMEOUT_S
        while (status := self.exit_status()) is None:
            if time.monotonic() > deadline:
                raise AssertionError("the command did not exit:\n" + "\n".join(self.screen()))
            time.sleep(0.05)
        return status

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

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], env=self.env, capture_output=True)
        shutil.rmtree(self._status.parent, ignore_errors=True)


@pytest.fixture
def terminal(team: Chatctl) -> Iterator[Terminal]:
    opened = Terminal(team.env)
    yield opened
    opened.close()
