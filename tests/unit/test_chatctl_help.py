"""chatctl's own help lists its commands without loading them: each line must still be the command's."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys

import pytest

from admin_cli.main import COMMANDS, Entry, LazyCommand


def first_paragraph(entry: Entry) -> str:
    """What Typer shows beside a command in its group's listing."""
    real = LazyCommand(entry).real
    return inspect.cleandoc(real.short_help or real.help or "").split("\n\n")[0].replace("\n", " ")


@pytest.mark.parametrize("entry", COMMANDS, ids=[entry.name for entry in COMMANDS])
def test_the_listed_help_line_is_the_commands_own(entry: Entry) -> None:
    assert entry.help == first_paragraph(entry)


def test_chatctl_help_lists_every_command_in_order_with_its_help_line() -> None:
    env = {**os.environ, "COLUMNS": "200"}
    result = subprocess.run(
        [sys.executable, "-m", "admin_cli", "--help"], capture_output=True, text=True, env=env, check=True
    )
    rows = re.findall(r"^│ (\S+) +(.+?) *│$", result.stdout.split("Commands")[1], re.MULTILINE)
    assert rows == [(entry.name, first_paragraph(entry)) for entry in COMMANDS]
