"""Command-line tools the deploy tests drive: where to find them and how to run them.

A linter or validator that is missing fails its test with the pip package to install
(they are dev dependencies); kubectl, which pip cannot install, skips instead.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def find_tool(name: str) -> str | None:
    """The tool next to this Python (its virtualenv's bin, activated or not), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    return shutil.which(name)


def require_tool(name: str, package: str) -> str:
    found = find_tool(name)
    if found is None:
        pytest.fail(f"{name} is not installed: pip install {package} (a dev dependency)", pytrace=False)
    return found


def run(
    argv: Sequence[str],
    *,
    timeout_s: float = 120,
    env: Mapping[str, str] | None = None,
    cwd: Path = REPO,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Runs a command to completion, output captured as text; never raises on its exit code."""
    return subprocess.run(
        list(argv),
        cwd=cwd,
        env=None if env is None else dict(env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def describe(result: subprocess.CompletedProcess[str], tail_lines: int = 60) -> str:
    """The command, its exit code and the end of its output, for an assertion message."""
    output = (result.stdout + result.stderr).strip().splitlines()
    shown = "\n".join(output[-tail_lines:])
    command = " ".join(str(arg) for arg in result.args)
    return f"`{command}` exited {result.returncode}:\n{shown}"
