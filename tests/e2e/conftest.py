"""chatctl as a user runs it: the installed executable, a state directory of the test's own."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import NOTE_LINE, TIMEOUT_S

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
